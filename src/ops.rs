//! The operation table: every operation kmscks serves, once, with its stable numeric code, its
//! AWS (or kmscks) name, its request and response types, and the IAM policy actions it is
//! checked against.
//!
//! This module sits just above the API vocabulary (`api::kms`, `api::hsm`, `types`, `error`)
//! and below everything that performs or carries operations: it knows nothing of the service,
//! the wire encoding or the CLI. From the table it derives the [`Op`] enum (codes, names and
//! policy actions), the [`Request`] and [`Response`] enums, and the [`Backend`] trait. Other
//! layers generate their own code from the same table through the callback macro
//! `for_each_op!`: the socket protocol its body codec (`protocol::codec`), the service
//! `Kms::dispatch` (`service::dispatch`). Codes are never reused; a retired operation keeps its
//! number as a comment.

use serde::{Deserialize, Serialize};

mod summary;

use crate::api::hsm::*;
use crate::api::kms::*;
use crate::error::{ErrorKind, KmsError, Result};
use crate::types::PolicyAction;

/// Invokes the macro `$callback` with every row of the operation table, in table order:
///
/// ```text
/// $( $code:literal $name:ident ($req:ty) -> $resp:ty [$($action:tt)*]; )*
/// ```
///
/// `$code` is the stable wire code, `$name` the operation's name (also the variant of [`Op`],
/// [`Request`] and [`Response`]), `$req`/`$resp` its request and response types (named as
/// `api::kms`/`api::hsm` export them; a response larger than [`RESPONSE_INLINE_MAX`] is boxed,
/// as `Box<ClusterResponse>`, so that every [`Response`] stays small to move), and `[...]` its
/// policy actions:
/// `[kms]` / `[cloudhsm]` for `service:<name>`, `[service: A B]` for other names, `[]` for none
/// (kmscks extras, and `Refused`, whose actions are each refused operation's own).
macro_rules! for_each_op {
    ($callback:ident) => {
        $callback! {
            // ---- Custom key stores
            1 CreateCustomKeyStore(CreateCustomKeyStoreRequest) -> CreateCustomKeyStoreResponse [kms];
            2 DescribeCustomKeyStores(DescribeCustomKeyStoresRequest) -> DescribeCustomKeyStoresResponse [kms];
            3 UpdateCustomKeyStore(UpdateCustomKeyStoreRequest) -> Empty [kms];
            4 DeleteCustomKeyStore(CustomKeyStoreIdRequest) -> Empty [kms];
            5 ConnectCustomKeyStore(CustomKeyStoreIdRequest) -> Empty [kms];
            6 DisconnectCustomKeyStore(CustomKeyStoreIdRequest) -> Empty [kms];
            7 WaitForConnection(WaitForConnectionRequest) -> Box<CustomKeyStoreEntry> [];
            // ---- Keys
            20 CreateKey(CreateKeyRequest) -> Box<KeyMetadataResponse> [kms];
            21 DescribeKey(KeyIdRequest) -> Box<KeyMetadataResponse> [kms];
            22 ListKeys(ListRequest) -> ListKeysResponse [kms];
            23 EnableKey(KeyIdRequest) -> Empty [kms];
            24 DisableKey(KeyIdRequest) -> Empty [kms];
            25 UpdateKeyDescription(UpdateKeyDescriptionRequest) -> Empty [kms];
            26 ScheduleKeyDeletion(ScheduleKeyDeletionRequest) -> ScheduleKeyDeletionResponse [kms];
            27 CancelKeyDeletion(KeyIdRequest) -> KeyIdResponse [kms];
            28 PutKeyPolicy(PutKeyPolicyRequest) -> Empty [kms];
            29 GetKeyPolicy(GetKeyPolicyRequest) -> GetKeyPolicyResponse [kms];
            30 ListKeyPolicies(ListRequest) -> ListKeyPoliciesResponse [kms];
            31 TagResource(TagResourceRequest) -> Empty [kms];
            32 UntagResource(UntagResourceRequest) -> Empty [kms];
            33 ListResourceTags(ListRequest) -> ListResourceTagsResponse [kms];
            34 CreateAlias(AliasRequest) -> Empty [kms];
            35 UpdateAlias(AliasRequest) -> Empty [kms];
            36 DeleteAlias(DeleteAliasRequest) -> Empty [kms];
            37 ListAliases(ListRequest) -> ListAliasesResponse [kms];
            38 GetKeyRotationStatus(KeyIdRequest) -> KeyRotationStatusResponse [kms];
            39 Refused(RefusedRequest) -> Empty [];
            40 LookupEvents(LookupEventsRequest) -> LookupEventsResponse [kms];
            41 CreateGrant(CreateGrantRequest) -> CreateGrantResponse [kms];
            42 ListGrants(ListGrantsRequest) -> ListGrantsResponse [kms];
            43 ListRetirableGrants(ListRetirableGrantsRequest) -> ListGrantsResponse [kms];
            44 RetireGrant(RetireGrantRequest) -> Empty [kms];
            45 RevokeGrant(RevokeGrantRequest) -> Empty [kms];
            46 EnableKeyRotation(EnableKeyRotationRequest) -> Empty [kms];
            47 DisableKeyRotation(KeyIdRequest) -> Empty [kms];
            48 RotateKeyOnDemand(KeyIdRequest) -> RotateKeyOnDemandResponse [kms];
            49 ListKeyRotations(ListKeyRotationsRequest) -> ListKeyRotationsResponse [kms];
            50 GetKeyLastUsage(KeyIdRequest) -> GetKeyLastUsageResponse [kms];
            // Cryptographic, but outside the data-plane block: an RSA pair takes up to a
            // second to generate, so a server runs them apart from its event loop.
            51 GenerateDataKeyPair(GenerateDataKeyPairRequest) -> Box<GenerateDataKeyPairResponse> [kms];
            52 GenerateDataKeyPairWithoutPlaintext(GenerateDataKeyPairRequest) -> Box<GenerateDataKeyPairResponse> [kms];
            55 GetParametersForImport(GetParametersForImportRequest) -> Box<GetParametersForImportResponse> [kms];
            56 ImportKeyMaterial(ImportKeyMaterialRequest) -> KeyMaterialResponse [kms];
            57 DeleteImportedKeyMaterial(DeleteImportedKeyMaterialRequest) -> DeleteImportedKeyMaterialResponse [kms];
            // ---- Cryptographic operations (60-99: `Op::is_data_plane`)
            60 Encrypt(EncryptRequest) -> EncryptResponse [kms];
            61 Decrypt(DecryptRequest) -> DecryptResponse [kms];
            62 ReEncrypt(ReEncryptRequest) -> ReEncryptResponse [kms: ReEncryptFrom ReEncryptTo];
            63 GenerateDataKey(GenerateDataKeyRequest) -> GenerateDataKeyResponse [kms];
            64 GenerateDataKeyWithoutPlaintext(GenerateDataKeyRequest) -> GenerateDataKeyResponse [kms];
            65 GenerateRandom(GenerateRandomRequest) -> GenerateRandomResponse [kms];
            66 EncryptBatch(BatchRequest<EncryptRequest>) -> BatchResponse<EncryptResponse> [kms: Encrypt];
            67 DecryptBatch(BatchRequest<DecryptRequest>) -> BatchResponse<DecryptResponse> [kms: Decrypt];
            68 GenerateDataKeyBatch(BatchRequest<GenerateDataKeyRequest>) -> BatchResponse<GenerateDataKeyResponse>
                [kms: GenerateDataKey];
            69 GenerateDataKeyWithoutPlaintextBatch(BatchRequest<GenerateDataKeyRequest>) -> BatchResponse<GenerateDataKeyResponse>
                [kms: GenerateDataKeyWithoutPlaintext];
            70 GenerateMac(GenerateMacRequest) -> GenerateMacResponse [kms];
            71 VerifyMac(VerifyMacRequest) -> VerifyMacResponse [kms];
            72 Sign(SignRequest) -> SignResponse [kms];
            73 Verify(VerifyRequest) -> VerifyResponse [kms];
            74 GetPublicKey(KeyIdRequest) -> Box<GetPublicKeyResponse> [kms];
            75 DeriveSharedSecret(DeriveSharedSecretRequest) -> DeriveSharedSecretResponse [kms];
            // ---- Simulated CloudHSM (the CloudHSM API's and CloudHSM CLI's names)
            100 CreateCluster(CreateClusterRequest) -> Box<ClusterResponse> [cloudhsm];
            101 DescribeClusters(DescribeClustersRequest) -> DescribeClustersResponse [cloudhsm];
            102 DeleteCluster(ClusterIdRequest) -> Box<ClusterResponse> [cloudhsm];
            103 CreateHsm(CreateHsmRequest) -> Box<HsmResponse> [cloudhsm];
            104 DeleteHsm(DeleteHsmRequest) -> DeleteHsmResponse [cloudhsm];
            105 InitializeCluster(InitializeClusterRequest) -> InitializeClusterResponse [cloudhsm];
            106 InitializeClusterWithNewCa(ClusterIdRequest) -> InitializeClusterResponse [cloudhsm: InitializeCluster];
            107 CreateBackup(ClusterIdRequest) -> Box<BackupDescription> [cloudhsm];
            108 DescribeBackups(DescribeBackupsRequest) -> DescribeBackupsResponse [cloudhsm];
            109 CopyBackupToRegion(CopyBackupToRegionRequest) -> Box<CopyBackupToRegionResponse> [cloudhsm];
            110 DeleteBackup(BackupIdRequest) -> Box<BackupResponse> [cloudhsm];
            111 CreateUser(UserRequest) -> UserDescription [cloudhsm];
            112 DeleteUser(UsernameRequest) -> Empty [cloudhsm];
            113 ChangePassword(UserRequest) -> Empty [cloudhsm];
            114 ListUsers(ClusterIdRequest) -> ListUsersResponse [cloudhsm];
            115 Login(UserRequest) -> Empty [cloudhsm];
            116 Logout(UsernameRequest) -> Empty [cloudhsm];
            117 ListKeyObjects(ClusterIdRequest) -> ListKeyObjectsResponse [cloudhsm: ListKeys];
            118 DeleteKeyObject(DeleteKeyObjectRequest) -> Empty [cloudhsm: DeleteKey];
            119 AuditLog(AuditLogRequest) -> AuditLogResponse [cloudhsm];
            120 InjectFault(InjectFaultRequest) -> Empty [cloudhsm];
            125 RestoreBackup(BackupIdRequest) -> Box<BackupResponse> [cloudhsm];
            126 ListFaults(ClusterIdRequest) -> ListFaultsResponse [cloudhsm];
            127 ActivateCluster(ActivateClusterRequest) -> Box<ClusterResponse> [cloudhsm];
            128 ModifyCluster(ModifyClusterRequest) -> Box<ClusterResponse> [cloudhsm];
            129 ModifyBackupAttributes(ModifyBackupAttributesRequest) -> Box<BackupResponse> [cloudhsm];
            130 TagHsmResource(TagHsmResourceRequest) -> Empty [cloudhsm: TagResource];
            131 UntagHsmResource(UntagHsmResourceRequest) -> Empty [cloudhsm: UntagResource];
            132 ListHsmTags(ListHsmTagsRequest) -> ListHsmTagsResponse [cloudhsm: ListTags];
        }
    };
}
pub(crate) use for_each_op;

/// The policy actions of one table row (see `for_each_op!`).
macro_rules! row_actions {
    ($name:ident []) => {
        &[]
    };
    ($name:ident [$service:ident]) => {
        row_actions!($name [$service : $name])
    };
    ($name:ident [$service:ident : $($action:ident)+]) => {{
        const ACTIONS: &[PolicyAction] = &[$(PolicyAction::from_table(concat!(
            stringify!($service),
            ":",
            stringify!($action)
        ))),+];
        ACTIONS
    }};
}

/// The largest response type [`Response`] holds inline, in bytes: larger ones are boxed in the
/// table. Every reply a client receives is moved several times between its decoder, its queue
/// and its caller; at 408 bytes (a cluster's description, held inline) those moves cost a
/// client pipelining GenerateDataKey a fifth of its time, for answers of 64 bytes.
pub const RESPONSE_INLINE_MAX: usize = 72;

macro_rules! define_ops {
    ($( $code:literal $name:ident ($req:ty) -> $resp:ty [$($action:tt)*]; )*) => {
        /// An operation: its stable code and AWS (or kmscks) name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[repr(u16)]
        #[allow(missing_docs)] // the names are the operations'
        pub enum Op {
            $( $name = $code, )*
        }

        impl Op {
            /// Every operation, in table order.
            pub const ALL: &'static [Op] = &[$(Op::$name),*];

            /// The operation's name, e.g. `CreateCustomKeyStore`.
            pub const fn name(self) -> &'static str {
                match self { $(Op::$name => stringify!($name),)* }
            }

            /// The stable numeric code (socket protocol).
            pub const fn code(self) -> u16 {
                self as u16
            }

            /// The operation with this code.
            // Inlined: every frame the daemon reads asks it, and out of line it was a call
            // through the GOT per request.
            #[inline]
            pub fn from_code(code: u16) -> Option<Op> {
                match code { $($code => Some(Op::$name),)* _ => None }
            }

            /// The operation with this name.
            pub fn from_name(name: &str) -> Option<Op> {
                match name { $(stringify!($name) => Some(Op::$name),)* _ => None }
            }

            /// Every IAM policy action the operation is checked against, e.g. `kms:Encrypt`;
            /// `kms:ReEncryptFrom` and `kms:ReEncryptTo` for ReEncrypt. Empty for the kmscks
            /// extra WaitForConnection (unchecked) and for Refused (each refused operation's own,
            /// [`Refused::action`]).
            pub const fn actions(self) -> &'static [PolicyAction] {
                match self { $(Op::$name => row_actions!($name [$($action)*]),)* }
            }
        }

        /// A request of any operation.
        #[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
        #[allow(missing_docs, clippy::large_enum_variant)]
        pub enum Request {
            $( $name($req), )*
        }

        /// A successful response of any operation.
        #[derive(Debug, Serialize, Deserialize, bincode::Encode, bincode::Decode)]
        #[allow(missing_docs, clippy::large_enum_variant)]
        pub enum Response {
            $( $name($resp), )*
        }

        impl Request {
            /// Which operation this is.
            pub fn op(&self) -> Op {
                match self { $(Request::$name(_) => Op::$name,)* }
            }
        }

        impl Response {
            /// Which operation this answers.
            pub fn op(&self) -> Op {
                match self { $(Response::$name(_) => Op::$name,)* }
            }
        }
    };
}

for_each_op!(define_ops);

impl Op {
    /// The one policy action of an operation that has exactly one (see [`Op::actions`]), for
    /// access checks: `authorize(tx, key, Op::DescribeKey.action())`.
    ///
    /// Panics for ReEncrypt (two actions), Refused and WaitForConnection (none): calling it for
    /// those is a programming error, caught at compile time in a `const` context.
    pub const fn action(self) -> PolicyAction {
        match self.actions() {
            [action] => *action,
            _ => panic!("Op::action: this operation has not exactly one policy action"),
        }
    }
}

/// The block of the table that holds the cryptographic operations (see `for_each_op!`).
const DATA_PLANE_CODES: std::ops::Range<u16> = 60..100;

impl Op {
    /// Whether the operation is a cryptographic one, of the table's block 60–99: served by the
    /// engine's shards without the control plane's lock, never writing the journal, in
    /// microseconds. Every other operation reads or changes the control-plane state (some
    /// fsync) or takes milliseconds (GenerateDataKeyPair's RSA key generation), so a server
    /// runs them apart from its event loop (see `daemon`).
    pub const fn is_data_plane(self) -> bool {
        DATA_PLANE_CODES.start <= self.code() && self.code() < DATA_PLANE_CODES.end
    }
}

impl Op {
    /// Whether the operation is cryptographic: the data plane's block, and the data key pair
    /// operations, which run apart from the event loop only because an RSA pair is slow to
    /// make. Their calls are counted per key and principal for the event log rather than
    /// recorded one by one (`service::tally`).
    pub const fn is_cryptographic(self) -> bool {
        self.is_data_plane()
            || matches!(
                self,
                Op::GenerateDataKeyPair | Op::GenerateDataKeyPairWithoutPlaintext
            )
    }
}

/// Something that performs operations: the in-process `Kms` (its impl is in `service`), or a
/// [`crate::Client`] of the daemon. The CLI, the load generator and the C API are written
/// against this.
///
/// Besides [`Backend::call`], the hot cryptographic operations have methods on borrowed
/// requests (`*_borrowed`), for callers that hold their arguments in their own memory (the C
/// API): a backend that must send an owned request (the client) keeps the defaults, which
/// build it and go through `call`; the in-process `Kms` answers them without building one (no
/// key id, context or plaintext copied, no `Request`/`Response` envelope), and lends a
/// batch's answers item by item from its own buffers.
pub trait Backend {
    /// Performs one operation.
    fn call(&self, request: &Request) -> Result<Response>;

    /// GenerateDataKey, or GenerateDataKeyWithoutPlaintext when `with_plaintext` is false.
    fn generate_data_key_borrowed(
        &self,
        request: &GenerateDataKeyRequestRef<'_>,
        with_plaintext: bool,
    ) -> Result<GenerateDataKeyResponse> {
        let request = request.to_request();
        if with_plaintext {
            answer!(
                self.call(&Request::GenerateDataKey(request))?,
                GenerateDataKey
            )
        } else {
            let request = Request::GenerateDataKeyWithoutPlaintext(request);
            answer!(self.call(&request)?, GenerateDataKeyWithoutPlaintext)
        }
    }

    /// Encrypt.
    fn encrypt_borrowed(&self, request: &EncryptRequestRef<'_>) -> Result<EncryptResponse> {
        answer!(self.call(&Request::Encrypt(request.to_request()))?, Encrypt)
    }

    /// Decrypt.
    fn decrypt_borrowed(&self, request: &DecryptRequestRef<'_>) -> Result<DecryptResponse> {
        answer!(self.call(&Request::Decrypt(request.to_request()))?, Decrypt)
    }

    /// GenerateDataKey (or WithoutPlaintext) for every item in one call, each item's answer
    /// lent to `emit` in order (exactly once per item) once the batch ran; an error means the
    /// batch did not run and `emit` was not called.
    fn generate_data_key_batch_borrowed(
        &self,
        items: &[GenerateDataKeyRequestRef<'_>],
        with_plaintext: bool,
        emit: &mut dyn FnMut(std::result::Result<GenerateDataKeyResponseRef<'_>, &KmsError>),
    ) -> Result<()> {
        let batch = BatchRequest {
            items: items.iter().map(|r| r.to_request()).collect(),
        };
        let answers = if with_plaintext {
            let request = Request::GenerateDataKeyBatch(batch);
            answer!(self.call(&request)?, GenerateDataKeyBatch)?
        } else {
            let request = Request::GenerateDataKeyWithoutPlaintextBatch(batch);
            answer!(self.call(&request)?, GenerateDataKeyWithoutPlaintextBatch)?
        };
        lend_answers(&answers, items.len(), |r| r.borrowed(), emit)
    }

    /// Encrypt for every item in one call, as
    /// [`Backend::generate_data_key_batch_borrowed`].
    fn encrypt_batch_borrowed(
        &self,
        items: &[EncryptRequestRef<'_>],
        emit: &mut dyn FnMut(std::result::Result<EncryptResponseRef<'_>, &KmsError>),
    ) -> Result<()> {
        let batch = BatchRequest {
            items: items.iter().map(|r| r.to_request()).collect(),
        };
        let answers = answer!(self.call(&Request::EncryptBatch(batch))?, EncryptBatch)?;
        lend_answers(&answers, items.len(), |r| r.borrowed(), emit)
    }
}

/// The response `$response` as the variant `$op` must answer with, or an internal error.
macro_rules! answer {
    ($response:expr, $op:ident) => {
        match $response {
            Response::$op(r) => Ok(r),
            other => Err(KmsError::new(
                ErrorKind::KMSInternalException,
                format!(
                    "{} was answered with a {} response",
                    stringify!($op),
                    other.op().name()
                ),
            )),
        }
    };
}
use answer;

/// Lends each answer of a batch response to `emit`, in order, once the response is known to
/// answer each of the `count` items (checked before any is lent).
fn lend_answers<'a, T, R>(
    answers: &'a BatchResponse<T>,
    count: usize,
    borrow: impl Fn(&'a T) -> R,
    emit: &mut dyn FnMut(std::result::Result<R, &KmsError>),
) -> Result<()> {
    if answers.results.len() != count {
        return Err(KmsError::new(
            ErrorKind::KMSInternalException,
            format!(
                "a batch of {count} items was answered with {} results",
                answers.results.len()
            ),
        ));
    }
    for item in &answers.results {
        match item {
            BatchItem::Ok(r) => emit(Ok(borrow(r))),
            BatchItem::Err(e) => emit(Err(&KmsError::from(e.clone()))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_data_plane_is_the_cryptographic_block_and_nothing_else() {
        for op in [Op::Encrypt, Op::Decrypt, Op::ReEncrypt, Op::GenerateRandom] {
            assert!(op.is_data_plane(), "{op:?}");
        }
        for op in [
            Op::GenerateDataKeyBatch,
            Op::GenerateDataKeyWithoutPlaintext,
        ] {
            assert!(op.is_data_plane(), "{op:?}");
        }
        for op in [
            Op::CreateKey,
            Op::DescribeKey,
            Op::WaitForConnection,
            Op::CreateCluster,
        ] {
            assert!(!op.is_data_plane(), "{op:?}");
        }
    }

    #[test]
    fn codes_and_names_are_unique_and_round_trip() {
        let mut codes = HashSet::new();
        let mut names = HashSet::new();
        for &op in Op::ALL {
            assert!(codes.insert(op.code()), "code {} reused", op.code());
            assert!(names.insert(op.name()), "name {} reused", op.name());
            assert_eq!(Op::from_code(op.code()), Some(op));
            assert_eq!(Op::from_name(op.name()), Some(op));
        }
        assert_eq!(Op::from_code(0), None);
        assert_eq!(Op::from_name("Nope"), None);
    }

    #[test]
    fn policy_actions_are_the_service_and_operation_name_unless_the_table_says_otherwise() {
        assert_eq!(Op::Encrypt.action().as_str(), "kms:Encrypt");
        assert_eq!(
            Op::CreateCustomKeyStore.action().as_str(),
            "kms:CreateCustomKeyStore"
        );
        assert_eq!(Op::CreateHsm.action().as_str(), "cloudhsm:CreateHsm");
        assert_eq!(Op::ListKeyObjects.action().as_str(), "cloudhsm:ListKeys");
        assert_eq!(Op::EncryptBatch.action(), Op::Encrypt.action());
        let re: Vec<&str> = Op::ReEncrypt.actions().iter().map(|a| a.as_str()).collect();
        assert_eq!(re, ["kms:ReEncryptFrom", "kms:ReEncryptTo"]);
        assert!(Op::Refused.actions().is_empty());
        assert!(Op::WaitForConnection.actions().is_empty());
    }

    #[test]
    fn every_action_names_its_service_and_an_operation_in_pascal_case() {
        for &op in Op::ALL {
            for action in op.actions() {
                let (service, name) = action
                    .as_str()
                    .split_once(':')
                    .unwrap_or_else(|| panic!("{op:?}: {action} has no service prefix"));
                assert!(["kms", "cloudhsm"].contains(&service), "{op:?}: {action}");
                assert!(
                    name.starts_with(|c: char| c.is_ascii_uppercase()),
                    "{action}"
                );
                assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "{action}");
            }
        }
    }

    #[test]
    fn refused_operations_have_unique_names_and_kms_actions() {
        let mut names = HashSet::new();
        for &r in Refused::ALL {
            assert!(names.insert(r.name()), "{} twice", r.name());
            assert_eq!(format!("{r:?}"), r.name());
            assert_eq!(r.action().as_str(), format!("kms:{}", r.name()));
            assert_eq!(Op::from_name(r.name()), None, "{} is also served", r.name());
        }
    }

    #[test]
    fn every_response_is_held_inline_only_up_to_the_limit_so_a_response_stays_small() {
        macro_rules! check {
            ($( $code:literal $name:ident ($req:ty) -> $resp:ty [$($action:tt)*]; )*) => {$(
                let size = std::mem::size_of::<$resp>();
                assert!(
                    size <= RESPONSE_INLINE_MAX,
                    "{}'s response {} is {size} bytes: box it in the table",
                    stringify!($name),
                    stringify!($resp),
                );
            )*};
        }
        for_each_op!(check);
        // The variant's payload and the tag, aligned.
        assert!(std::mem::size_of::<Response>() <= RESPONSE_INLINE_MAX + 8);
        assert!(std::mem::size_of::<Result<Response>>() <= RESPONSE_INLINE_MAX + 8);
    }
}
