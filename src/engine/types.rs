//! The engine's vocabulary: what the control plane tells it ([`Control`]s about HSM slots,
//! keys, gates, authorizers and aliases), its configuration, and what callers hand it and get
//! back. Kept apart from the machinery in `mod.rs`, `sched.rs` and `shard.rs` so the contract
//! between the control plane and the data plane reads in one place.

use std::fmt;
use std::sync::Arc;

pub use crate::crypto::private_key::PrivateKey;
use crate::crypto::subkey::DEFAULT_MAX_USES;
use crate::secret::{KeyMaterial, SecretBytes};
use crate::types::{
    Clock, DataKeySpec, EncryptionContext, GrantConstraints, HsmId, KeyId, KeyName, PolicyVerdict,
    Scope, Timestamp,
};
use crate::KmsError;

/// Where key material lives: one HSM of a CloudHSM cluster, or the default-store fleet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum HsmSlot {
    /// The virtual fleet serving default-store (Origin `AWS_KMS`) keys, present on every shard.
    Default,
    /// One simulated CloudHSM HSM; the engine places it on one shard.
    Hsm(HsmId),
}

/// A set of HSM slots holding one key, without an allocation for a default-store key (which
/// only the default fleet holds). A key is held either by the default fleet or by HSMs of its
/// cluster, never both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum SlotSet {
    /// No HSM holds the key.
    #[default]
    None,
    /// The default-store fleet holds it (a default-store key).
    Default,
    /// These HSMs of the key's cluster hold it.
    Hsms(Vec<HsmId>),
}

impl SlotSet {
    pub(crate) fn contains(&self, slot: &HsmSlot) -> bool {
        match (self, slot) {
            (SlotSet::Default, HsmSlot::Default) => true,
            (SlotSet::Hsms(v), HsmSlot::Hsm(h)) => v.contains(h),
            _ => false,
        }
    }

    /// Adds `slot`; a key is held either by the default fleet or by HSMs, never both, so a
    /// slot of the other kind replaces what was there.
    pub(crate) fn insert(&mut self, slot: &HsmSlot) {
        match (&mut *self, slot) {
            (SlotSet::Default, HsmSlot::Default) => {}
            (SlotSet::Hsms(v), HsmSlot::Hsm(h)) => {
                if !v.contains(h) {
                    v.push(h.clone());
                }
            }
            (_, HsmSlot::Default) => *self = SlotSet::Default,
            (_, HsmSlot::Hsm(h)) => *self = SlotSet::Hsms(vec![h.clone()]),
        }
    }

    pub(crate) fn remove(&mut self, slot: &HsmSlot) {
        match (&mut *self, slot) {
            (SlotSet::Default, HsmSlot::Default) => *self = SlotSet::None,
            (SlotSet::Hsms(v), HsmSlot::Hsm(h)) => {
                v.retain(|x| x != h);
                if v.is_empty() {
                    *self = SlotSet::None;
                }
            }
            _ => {}
        }
    }

    pub(crate) fn slots(&self) -> impl Iterator<Item = HsmSlot> + '_ {
        let default = matches!(self, SlotSet::Default).then_some(HsmSlot::Default);
        let hsms = match self {
            SlotSet::Hsms(v) => &v[..],
            _ => &[],
        };
        default
            .into_iter()
            .chain(hsms.iter().map(|h| HsmSlot::Hsm(h.clone())))
    }
}

/// Whether a key may be used, as decided by the control plane.
#[derive(Clone, Debug)]
pub enum Gate {
    /// Usable.
    Open,
    /// Usable until a time the engine checks itself ([`Expiry`]).
    OpenUntil(Arc<Expiry>),
    /// Not usable: every request answers this error (e.g. `DisabledException`).
    Closed(KmsError),
}

/// The end of a key's usable time (imported key material at its `ValidTo`): from `until` on
/// `clock`, every request answers `then`. The control plane deletes such material once it
/// expires, but only when its worker gets the core's lock (a control-plane call may hold it
/// for a while, and right after an open none has swept yet); the engine refuses the key at
/// the instant itself. Only such keys pay the clock's read.
#[derive(Clone)]
pub struct Expiry {
    /// The first instant the key is refused.
    pub until: Timestamp,
    /// The instance's clock (a test's manual clock included).
    pub clock: Arc<dyn Clock>,
    /// What a request answers from then on.
    pub then: KmsError,
}

impl Expiry {
    /// The refusal, if `until` has come.
    pub(crate) fn refusal(&self) -> Option<&KmsError> {
        (self.clock.now() >= self.until).then_some(&self.then)
    }
}

impl fmt::Debug for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expiry")
            .field("until", &self.until)
            .field("then", &self.then)
            .finish_non_exhaustive()
    }
}

/// A data-plane action, for the authorizer. The engine knows nothing of policies or of the
/// operation table; the service's tests hold these names to the table's policy actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// `kms:Encrypt`.
    Encrypt,
    /// `kms:Decrypt`.
    Decrypt,
    /// `kms:ReEncryptFrom` (the source key of ReEncrypt).
    ReEncryptFrom,
    /// `kms:ReEncryptTo` (the destination key of ReEncrypt).
    ReEncryptTo,
    /// `kms:GenerateDataKey`.
    GenerateDataKey,
    /// `kms:GenerateDataKeyWithoutPlaintext`.
    GenerateDataKeyWithoutPlaintext,
    /// `kms:GenerateRandom`.
    GenerateRandom,
    /// `kms:GenerateMac`.
    GenerateMac,
    /// `kms:VerifyMac`.
    VerifyMac,
    /// `kms:Sign`.
    Sign,
    /// `kms:Verify`.
    Verify,
    /// `kms:GetPublicKey`.
    GetPublicKey,
    /// `kms:GenerateDataKeyPair` (the private key of a data key pair sealed as by Encrypt).
    GenerateDataKeyPair,
    /// `kms:GenerateDataKeyPairWithoutPlaintext`.
    GenerateDataKeyPairWithoutPlaintext,
    /// `kms:DeriveSharedSecret`.
    DeriveSharedSecret,
}

impl Action {
    /// Every action.
    pub const ALL: &'static [Action] = &[
        Action::Encrypt,
        Action::Decrypt,
        Action::ReEncryptFrom,
        Action::ReEncryptTo,
        Action::GenerateDataKey,
        Action::GenerateDataKeyWithoutPlaintext,
        Action::GenerateRandom,
        Action::GenerateMac,
        Action::VerifyMac,
        Action::Sign,
        Action::Verify,
        Action::GetPublicKey,
        Action::GenerateDataKeyPair,
        Action::GenerateDataKeyPairWithoutPlaintext,
        Action::DeriveSharedSecret,
    ];

    /// The IAM action name, e.g. `kms:Encrypt`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Encrypt => "kms:Encrypt",
            Action::Decrypt => "kms:Decrypt",
            Action::ReEncryptFrom => "kms:ReEncryptFrom",
            Action::ReEncryptTo => "kms:ReEncryptTo",
            Action::GenerateDataKey => "kms:GenerateDataKey",
            Action::GenerateDataKeyWithoutPlaintext => "kms:GenerateDataKeyWithoutPlaintext",
            Action::GenerateRandom => "kms:GenerateRandom",
            Action::GenerateMac => "kms:GenerateMac",
            Action::VerifyMac => "kms:VerifyMac",
            Action::Sign => "kms:Sign",
            Action::Verify => "kms:Verify",
            Action::GetPublicKey => "kms:GetPublicKey",
            Action::GenerateDataKeyPair => "kms:GenerateDataKeyPair",
            Action::GenerateDataKeyPairWithoutPlaintext => {
                "kms:GenerateDataKeyPairWithoutPlaintext"
            }
            Action::DeriveSharedSecret => "kms:DeriveSharedSecret",
        }
    }

    /// Whether the action seals a data key pair's private key, which AWS allows only under
    /// keys of the default key store.
    pub const fn seals_key_pair(self) -> bool {
        matches!(
            self,
            Action::GenerateDataKeyPair | Action::GenerateDataKeyPairWithoutPlaintext
        )
    }
}

impl Action {
    /// This action's bit in an [`ActionSet`].
    const fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

/// A set of [`Action`]s, one bit each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActionSet(u16);

// Every action has its bit.
const _: () = assert!(Action::ALL.len() <= u16::BITS as usize);

impl ActionSet {
    /// The set with `action` added.
    pub const fn with(self, action: Action) -> ActionSet {
        ActionSet(self.0 | action.bit())
    }

    /// Whether `action` is in the set.
    pub const fn contains(self, action: Action) -> bool {
        self.0 & action.bit() != 0
    }
}

/// A grant as the engine checks it (the control plane's `kms::grants` decides what it is):
/// its grantee may perform its actions on the key when its constraints hold for the request's
/// encryption context.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineGrant {
    /// The grantee principal.
    pub grantee: Box<str>,
    /// The data-plane actions it allows.
    pub actions: ActionSet,
    /// Its encryption context constraints, if any.
    pub constraints: Option<GrantConstraints>,
}

impl EngineGrant {
    /// Whether the grant lets `principal` perform `action` with `context`.
    pub fn allows(&self, principal: &str, action: Action, context: &EncryptionContext) -> bool {
        *self.grantee == *principal
            && self.actions.contains(action)
            && self
                .constraints
                .as_ref()
                .is_none_or(|c| c.hold_for(context))
    }
}

/// Decides whether a principal may perform an action on a key (the key policy's verdict).
///
/// One authorizer may serve many keys (every key with the same policy shares one), so it is
/// told which key is asked about.
pub trait Authorizer: Send + Sync {
    /// Whether `principal` may perform `action` on `key`.
    fn allows(&self, principal: &str, action: Action, key: &KeyId) -> bool;

    /// [`Authorizer::allows`], telling an explicit deny (which no grant overrides) from the
    /// absence of an allow (which a grant may make up for). Without an override, a refusal is
    /// the latter.
    fn verdict(&self, principal: &str, action: Action, key: &KeyId) -> PolicyVerdict {
        if self.allows(principal, action, key) {
            PolicyVerdict::Allow
        } else {
            PolicyVerdict::ImplicitDeny
        }
    }

    /// Whether [`Authorizer::allows`] is a pure function of its arguments for as long as this
    /// object lives (a parsed policy is; a closure reading outside state is not). The engine
    /// then remembers, per key and shard, the actions it allowed the key's last caller, until
    /// the key is given another authorizer ([`Control::PutKey`]); otherwise it asks on every
    /// request. False unless an implementation says so.
    fn is_pure(&self) -> bool {
        false
    }
}

/// An authorizer that allows everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn allows(&self, _principal: &str, _action: Action, _key: &KeyId) -> bool {
        true
    }

    fn is_pure(&self) -> bool {
        true
    }
}

impl<F: Fn(&str, Action) -> bool + Send + Sync> Authorizer for F {
    fn allows(&self, principal: &str, action: Action, _key: &KeyId) -> bool {
        self(principal, action)
    }
}

/// A change pushed by the control plane.
pub enum Control {
    /// An HSM became active (or the default fleet came up); the engine places it on a shard.
    AddHsm {
        /// The slot.
        hsm: HsmSlot,
    },
    /// An HSM is gone: its replicas are dropped (zeroized).
    RemoveHsm {
        /// The slot.
        hsm: HsmSlot,
    },
    /// An HSM holds a replica of a key's material.
    PutReplica {
        /// The slot (must be added).
        hsm: HsmSlot,
        /// The key.
        key: KeyId,
        /// Its 256-bit material (copied into the shard(s) hosting the slot).
        material: KeyMaterial,
    },
    /// An HSM no longer holds the key.
    RemoveReplica {
        /// The slot.
        hsm: HsmSlot,
        /// The key.
        key: KeyId,
    },
    /// A key exists (or its gate or authorizer changed): before its replicas. Its ARN is not sent: the engine
    /// writes it from the key id and its [`Scope`] when it answers.
    PutKey {
        /// The key.
        key: KeyId,
        /// Whether it is usable.
        gate: Gate,
        /// Its policy verdicts.
        authorizer: Arc<dyn Authorizer>,
    },
    /// A grant on a key (which must exist) is created: it allows beside the key's authorizer.
    PutGrant {
        /// The key.
        key: KeyId,
        /// The grant id.
        id: Box<str>,
        /// What it allows.
        grant: Arc<EngineGrant>,
    },
    /// A grant is retired or revoked: from the next request on, it allows nothing.
    RemoveGrant {
        /// The key.
        key: KeyId,
        /// The grant id.
        id: Box<str>,
    },
    /// Opens or closes a key.
    SetGate {
        /// The key.
        key: KeyId,
        /// The new gate.
        gate: Gate,
    },
    /// The key is deleted (with its aliases and replicas).
    RemoveKey {
        /// The key.
        key: KeyId,
    },
    /// An alias names a key.
    PutAlias {
        /// `alias/...`.
        alias: String,
        /// The target key (must exist).
        key: KeyId,
    },
    /// An alias is deleted.
    RemoveAlias {
        /// `alias/...`.
        alias: String,
    },
    /// Every cryptographic operation this HSM serves takes `latency` longer (a slow HSM,
    /// `Fault::SlowHsm`); zero makes it fast again. The latency is paid on the caller's thread
    /// after the shard is released (see `engine::latency`), never on the shard.
    SetHsmLatency {
        /// The HSM.
        hsm: HsmId,
        /// The added latency per operation.
        latency: std::time::Duration,
    },
    /// Forget every HSM, key and alias (their material is dropped): the control plane sends
    /// everything again after it, when it no longer knows what the engine holds.
    Reset,
    /// A default-store key (which must exist) that is not a symmetric encryption key (an HMAC
    /// or signing key): its key object, parsed once by the control plane and shared by every shard.
    /// Such a key has no replicas; every shard serves it.
    PutPrivate {
        /// The key.
        key: KeyId,
        /// Its parsed key.
        private: Arc<PrivateKey>,
    },
    /// A default-store key (which must exist) rotated: from now on it seals with its newest
    /// material version and opens blobs of every version listed. Sent only for keys that
    /// rotated; a key that never did is version 0, its replica's material.
    PutVersions {
        /// The key.
        key: KeyId,
        /// Its material versions.
        versions: Arc<KeyVersions>,
    },
}

/// Every material version of a rotated key ([`Control::PutVersions`]).
pub struct KeyVersions {
    /// The newest version's number (it seals).
    pub newest: u32,
    /// The newest version's material.
    pub current: KeyMaterial,
    /// The older versions (they only open), by number.
    pub older: Vec<(u32, KeyMaterial)>,
}

impl KeyVersions {
    /// The material of version `version`, if the key has it.
    pub fn material(&self, version: u32) -> Option<&KeyMaterial> {
        if version == self.newest {
            return Some(&self.current);
        }
        self.older
            .iter()
            .find(|(v, _)| *v == version)
            .map(|(_, m)| m)
    }
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Control::AddHsm { hsm } => write!(f, "AddHsm({hsm:?})"),
            Control::RemoveHsm { hsm } => write!(f, "RemoveHsm({hsm:?})"),
            Control::PutReplica { hsm, key, .. } => {
                write!(f, "PutReplica({hsm:?}, {key}, <redacted>)")
            }
            Control::RemoveReplica { hsm, key } => write!(f, "RemoveReplica({hsm:?}, {key})"),
            Control::PutKey { key, gate, .. } => write!(f, "PutKey({key}, {gate:?})"),
            Control::SetGate { key, gate } => write!(f, "SetGate({key}, {gate:?})"),
            Control::PutGrant { key, id, grant } => {
                write!(f, "PutGrant({key}, {id}, {grant:?})")
            }
            Control::RemoveGrant { key, id } => write!(f, "RemoveGrant({key}, {id})"),
            Control::RemoveKey { key } => write!(f, "RemoveKey({key})"),
            Control::PutAlias { alias, key } => write!(f, "PutAlias({alias}, {key})"),
            Control::RemoveAlias { alias } => write!(f, "RemoveAlias({alias})"),
            Control::SetHsmLatency { hsm, latency } => {
                write!(f, "SetHsmLatency({hsm}, {latency:?})")
            }
            Control::Reset => write!(f, "Reset"),
            Control::PutPrivate { key, private } => write!(f, "PutPrivate({key}, {private:?})"),
            Control::PutVersions { key, versions } => {
                write!(
                    f,
                    "PutVersions({key}, newest {}, <redacted>)",
                    versions.newest
                )
            }
        }
    }
}

/// Default [`EngineConfig::seal_cache`]: 4,096 kept contexts per shard, about 3 MiB, so that
/// the kept contexts of a machine's shards stay a fraction of its last-level cache. Past them
/// a seal expands its key's subkey for itself, which on this machine costs less than fetching
/// a context that the caches no longer hold (`kmscks bench --scale`'s
/// `expand_random_floor_ratio` against `seal_random_floor_ratio`).
pub const SEAL_CACHE: usize = 1 << 12;

/// Engine settings.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Number of shards; 0 = the number of available cores. At most 64.
    pub shards: usize,
    /// Pin each worker to a core (`core_affinity`); ignored where unsupported.
    pub pin_workers: bool,
    /// Seals under one subkey before it is retired (default 2^31; tests use 4).
    pub subkey_max_uses: u64,
    /// Decrypt subkeys cached per shard (the cache holds at most twice this).
    pub decrypt_cache: usize,
    /// Expanded sealing contexts (AES-GCM round keys and GHASH tables, several hundred bytes
    /// each) kept per shard at most, for the keys used most (a CLOCK sweep drops the least
    /// recently used). A key without one seals by expanding its epoch's 32-byte subkey for that
    /// call: its epoch (salt, counter, subkey) stays either way.
    pub seal_cache: usize,
    /// Whether a batch caller may hand parts of its batch to the workers of other shards
    /// whose cores look idle (see `dispatch_batch`; a caller may also keep its own batches
    /// home, `BatchOut::keep_home`). Right for callers that leave cores idle, as an
    /// application's few threads do; a server whose own threads already run one per core
    /// turns it off (`kmscksd` does, whenever its event loops cover the shards), because there
    /// the hand-off's owned copies and wake-ups buy no parallelism, only contention with the
    /// other loops and the clients for the same cores.
    pub split_batches: bool,
    /// Account and Region, for ARNs in messages.
    pub scope: Scope,
}

impl EngineConfig {
    /// The number of shards an engine of this config runs: `shards`, or one per available
    /// core for 0; at most 64.
    pub fn shard_count(&self) -> usize {
        match self.shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
        .min(64)
    }
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            shards: 0,
            pin_workers: true,
            subkey_max_uses: DEFAULT_MAX_USES,
            decrypt_cache: 1024,
            seal_cache: SEAL_CACHE,
            split_batches: true,
            scope: Scope::default(),
        }
    }
}

/// Encrypt's answer.
#[derive(Debug)]
pub struct EncryptOutput {
    /// The ciphertext blob.
    pub ciphertext_blob: Vec<u8>,
    /// The key ARN.
    pub key_arn: Arc<str>,
}

/// Decrypt's answer.
#[derive(Debug)]
pub struct DecryptOutput {
    /// The plaintext.
    pub plaintext: SecretBytes,
    /// The ARN of the key that decrypted.
    pub key_arn: Arc<str>,
}

/// ReEncrypt's answer.
#[derive(Debug)]
pub struct ReEncryptOutput {
    /// The new blob, under the destination key.
    pub ciphertext_blob: Vec<u8>,
    /// The source key ARN.
    pub source_key_arn: Arc<str>,
    /// The destination key ARN.
    pub key_arn: Arc<str>,
}

/// GenerateDataKey(WithoutPlaintext)'s answer.
#[derive(Debug)]
pub struct DataKeyOutput {
    /// The data key encrypted under the KMS key.
    pub ciphertext_blob: Vec<u8>,
    /// The data key (None for WithoutPlaintext).
    pub plaintext: Option<SecretBytes>,
    /// The key ARN.
    pub key_arn: Arc<str>,
}

/// One Encrypt of a batch. Its `Debug` shows the plaintext's length, never its bytes.
#[derive(Clone)]
pub struct EncryptItem<'a> {
    /// The key.
    pub key: KeyName<'a>,
    /// Within [`PLAINTEXT_LEN`](crate::types::limits::PLAINTEXT_LEN) bytes.
    pub plaintext: &'a [u8],
    /// The encryption context.
    pub context: &'a EncryptionContext,
}

/// One Decrypt of a batch.
#[derive(Clone, Debug)]
pub struct DecryptItem<'a> {
    /// The blob.
    pub ciphertext: &'a [u8],
    /// The encryption context it was made with.
    pub context: &'a EncryptionContext,
    /// Optional key that must match the blob's.
    pub key: Option<KeyName<'a>>,
}

/// One GenerateDataKey of a batch.
#[derive(Clone, Debug)]
pub struct DataKeyItem<'a> {
    /// The key.
    pub key: KeyName<'a>,
    /// `KeySpec` (exactly one of this and `number_of_bytes`).
    pub key_spec: Option<DataKeySpec>,
    /// `NumberOfBytes`, within [`NUMBER_OF_BYTES`](crate::types::limits::NUMBER_OF_BYTES).
    pub number_of_bytes: Option<u32>,
    /// The encryption context.
    pub context: &'a EncryptionContext,
}

/// An Encrypt answer of a batch, borrowed from its [`BatchOut`](super::BatchOut).
#[derive(Clone, Copy, Debug)]
pub struct EncryptView<'a> {
    /// The ciphertext blob.
    pub ciphertext_blob: &'a [u8],
    /// The key ARN.
    pub key_arn: &'a Arc<str>,
}

/// A Decrypt answer of a batch, borrowed from its [`BatchOut`](super::BatchOut).
#[derive(Clone, Copy)]
pub struct DecryptView<'a> {
    /// The plaintext.
    pub plaintext: &'a [u8],
    /// The ARN of the key that decrypted.
    pub key_arn: &'a Arc<str>,
}

/// A GenerateDataKey(WithoutPlaintext) answer of a batch, borrowed from its
/// [`BatchOut`](super::BatchOut).
#[derive(Clone, Copy)]
pub struct DataKeyView<'a> {
    /// The data key encrypted under the KMS key.
    pub ciphertext_blob: &'a [u8],
    /// The data key (None for WithoutPlaintext).
    pub plaintext: Option<&'a [u8]>,
    /// The key ARN.
    pub key_arn: &'a Arc<str>,
}

impl fmt::Debug for EncryptItem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptItem")
            .field("key", &self.key)
            .field("plaintext_len", &self.plaintext.len())
            .field("context", &self.context)
            .finish()
    }
}

impl fmt::Debug for DecryptView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptView")
            .field("plaintext", &"<redacted>")
            .field("key_arn", &self.key_arn)
            .finish()
    }
}

impl fmt::Debug for DataKeyView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKeyView")
            .field("ciphertext_blob", &self.ciphertext_blob.len())
            .field("plaintext", &self.plaintext.map(|_| "<redacted>"))
            .field("key_arn", &self.key_arn)
            .finish()
    }
}

/// What GenerateMac returns.
#[derive(Debug)]
pub struct MacOutput {
    /// The MAC.
    pub mac: Vec<u8>,
    /// The key's ARN.
    pub key_arn: Arc<str>,
}

/// What Sign returns.
#[derive(Debug)]
pub struct SignOutput {
    /// The signature.
    pub signature: Vec<u8>,
    /// The key's ARN.
    pub key_arn: Arc<str>,
}
