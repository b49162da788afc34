//! The operation table: every operation kmscks serves, once, with its stable numeric code, its
//! AWS name, its request and response types, and how [`Kms`] performs it.
//!
//! `operations!` derives from this one table the [`Op`] enum (codes and names for the wire
//! protocol, the CLI and logs), the [`Request`] and [`Response`] enums (the bodies the socket
//! protocol carries), and [`Kms::dispatch`]. Codes are never reused; a retired operation keeps
//! its number as a comment.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::hsm::api::*;
use crate::kms::api::*;
use crate::kms::unsupported::KeyRotationStatusResponse;
use crate::Kms;

macro_rules! operations {
    ($( $code:literal $name:ident ($req:ty) -> $resp:ty = |$kms:ident, $r:ident| $body:expr; )*) => {
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
            pub fn from_code(code: u16) -> Option<Op> {
                match code { $($code => Some(Op::$name),)* _ => None }
            }

            /// The operation with this name.
            pub fn from_name(name: &str) -> Option<Op> {
                match name { $(stringify!($name) => Some(Op::$name),)* _ => None }
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

        // Socket protocol bodies: the operation's own request or response struct, bincode
        // encoded with `protocol::BINCODE_CONFIG` (the op code travels in the frame header).
        impl Request {
            /// Appends the bincode body of this request (without the enum tag) to `out`.
            pub fn encode_body(&self, out: &mut Vec<u8>) -> std::result::Result<(), bincode::error::EncodeError> {
                match self { $(Request::$name(r) => crate::protocol::codec::encode_body(r, out),)* }
            }

            /// Decodes the body of a request of `op`; returns it and the bytes consumed.
            pub fn decode_body(op: Op, body: &[u8]) -> std::result::Result<(Request, usize), bincode::error::DecodeError> {
                match op { $(Op::$name => crate::protocol::codec::decode_body::<$req>(body).map(|(r, n)| (Request::$name(r), n)),)* }
            }
        }

        impl Response {
            /// Appends the bincode body of this response (without the enum tag) to `out`.
            pub fn encode_body(&self, out: &mut Vec<u8>) -> std::result::Result<(), bincode::error::EncodeError> {
                match self { $(Response::$name(r) => crate::protocol::codec::encode_body(r, out),)* }
            }

            /// Decodes the body of a response of `op`; returns it and the bytes consumed.
            pub fn decode_body(op: Op, body: &[u8]) -> std::result::Result<(Response, usize), bincode::error::DecodeError> {
                match op { $(Op::$name => crate::protocol::codec::decode_body::<$resp>(body).map(|(r, n)| (Response::$name(r), n)),)* }
            }
        }

        impl Kms {
            /// Performs any operation, as the handle's principal.
            pub fn dispatch(&self, request: &Request) -> Result<Response> {
                match request {
                    $( Request::$name($r) => {
                        let $kms = self;
                        $body.map(Response::$name)
                    } )*
                }
            }
        }
    };
}

fn empty(r: Result<()>) -> Result<Empty> {
    r.map(|()| Empty {})
}

operations! {
    // ---- Custom key stores
    1 CreateCustomKeyStore(CreateCustomKeyStoreRequest) -> CreateCustomKeyStoreResponse = |k, r| k.create_custom_key_store(r);
    2 DescribeCustomKeyStores(DescribeCustomKeyStoresRequest) -> DescribeCustomKeyStoresResponse = |k, r| k.describe_custom_key_stores(r);
    3 UpdateCustomKeyStore(UpdateCustomKeyStoreRequest) -> Empty = |k, r| k.update_custom_key_store(r);
    4 DeleteCustomKeyStore(CustomKeyStoreIdRequest) -> Empty = |k, r| k.delete_custom_key_store(r);
    5 ConnectCustomKeyStore(CustomKeyStoreIdRequest) -> Empty = |k, r| k.connect_custom_key_store(r);
    6 DisconnectCustomKeyStore(CustomKeyStoreIdRequest) -> Empty = |k, r| k.disconnect_custom_key_store(r);
    7 WaitForConnection(WaitForConnectionRequest) -> CustomKeyStoreEntry =
        |k, r| k.wait_for_connection(&r.custom_key_store_id, Duration::from_millis(r.timeout_millis));
    // ---- Keys
    20 CreateKey(CreateKeyRequest) -> KeyMetadataResponse = |k, r| k.create_key(r);
    21 DescribeKey(KeyIdRequest) -> KeyMetadataResponse = |k, r| k.describe_key(r);
    22 ListKeys(ListRequest) -> ListKeysResponse = |k, r| k.list_keys(r);
    23 EnableKey(KeyIdRequest) -> Empty = |k, r| k.enable_key(r);
    24 DisableKey(KeyIdRequest) -> Empty = |k, r| k.disable_key(r);
    25 UpdateKeyDescription(UpdateKeyDescriptionRequest) -> Empty = |k, r| k.update_key_description(r);
    26 ScheduleKeyDeletion(ScheduleKeyDeletionRequest) -> ScheduleKeyDeletionResponse = |k, r| k.schedule_key_deletion(r);
    27 CancelKeyDeletion(KeyIdRequest) -> KeyIdResponse = |k, r| k.cancel_key_deletion(r);
    28 PutKeyPolicy(PutKeyPolicyRequest) -> Empty = |k, r| k.put_key_policy(r);
    29 GetKeyPolicy(GetKeyPolicyRequest) -> GetKeyPolicyResponse = |k, r| k.get_key_policy(r);
    30 ListKeyPolicies(ListRequest) -> ListKeyPoliciesResponse = |k, r| k.list_key_policies(r);
    31 TagResource(TagResourceRequest) -> Empty = |k, r| k.tag_resource(r);
    32 UntagResource(UntagResourceRequest) -> Empty = |k, r| k.untag_resource(r);
    33 ListResourceTags(ListRequest) -> ListResourceTagsResponse = |k, r| k.list_resource_tags(r);
    34 CreateAlias(AliasRequest) -> Empty = |k, r| k.create_alias(r);
    35 UpdateAlias(AliasRequest) -> Empty = |k, r| k.update_alias(r);
    36 DeleteAlias(DeleteAliasRequest) -> Empty = |k, r| k.delete_alias(r);
    37 ListAliases(ListRequest) -> ListAliasesResponse = |k, r| k.list_aliases(r);
    38 GetKeyRotationStatus(KeyIdRequest) -> KeyRotationStatusResponse = |k, r| k.get_key_rotation_status(r);
    39 Refused(RefusedRequest) -> Empty =
        |k, r| k.refused(r.operation, &KeyIdRequest { key_id: r.key_id.clone(), ..Default::default() });
    40 LookupEvents(Empty) -> LookupEventsResponse = |k, _r| k.kms_events().map(|events| LookupEventsResponse { events });
    // ---- Cryptographic operations
    60 Encrypt(EncryptRequest) -> EncryptResponse = |k, r| k.encrypt(r);
    61 Decrypt(DecryptRequest) -> DecryptResponse = |k, r| k.decrypt(r);
    62 ReEncrypt(ReEncryptRequest) -> ReEncryptResponse = |k, r| k.re_encrypt(r);
    63 GenerateDataKey(GenerateDataKeyRequest) -> GenerateDataKeyResponse = |k, r| k.generate_data_key(r);
    64 GenerateDataKeyWithoutPlaintext(GenerateDataKeyRequest) -> GenerateDataKeyResponse =
        |k, r| k.generate_data_key_without_plaintext(r);
    65 GenerateRandom(GenerateRandomRequest) -> GenerateRandomResponse = |k, r| k.generate_random(r);
    66 EncryptBatch(BatchRequest<EncryptRequest>) -> BatchResponse<EncryptResponse> =
        |k, r| Ok::<_, crate::KmsError>(BatchResponse::from_results(k.encrypt_batch(&r.items)));
    67 DecryptBatch(BatchRequest<DecryptRequest>) -> BatchResponse<DecryptResponse> =
        |k, r| Ok::<_, crate::KmsError>(BatchResponse::from_results(k.decrypt_batch(&r.items)));
    68 GenerateDataKeyBatch(BatchRequest<GenerateDataKeyRequest>) -> BatchResponse<GenerateDataKeyResponse> =
        |k, r| Ok::<_, crate::KmsError>(BatchResponse::from_results(k.generate_data_key_batch(&r.items, true)));
    69 GenerateDataKeyWithoutPlaintextBatch(BatchRequest<GenerateDataKeyRequest>) -> BatchResponse<GenerateDataKeyResponse> =
        |k, r| Ok::<_, crate::KmsError>(BatchResponse::from_results(k.generate_data_key_batch(&r.items, false)));
    // ---- Simulated CloudHSM
    100 CreateCluster(CreateClusterRequest) -> ClusterResponse = |k, r| k.create_cluster(r);
    101 DescribeClusters(DescribeClustersRequest) -> DescribeClustersResponse = |k, r| k.describe_clusters(r);
    102 DeleteCluster(ClusterIdRequest) -> ClusterResponse = |k, r| k.delete_cluster(&r.cluster_id);
    103 CreateHsm(CreateHsmRequest) -> HsmResponse = |k, r| k.create_hsm(r);
    104 DeleteHsm(DeleteHsmRequest) -> DeleteHsmResponse = |k, r| k.delete_hsm(r);
    105 InitializeCluster(InitializeClusterRequest) -> InitializeClusterResponse = |k, r| k.initialize_cluster(r);
    106 InitializeClusterWithNewCa(ClusterIdRequest) -> InitializeClusterResponse =
        |k, r| k.initialize_cluster_with_new_ca(&r.cluster_id);
    107 CreateBackup(ClusterIdRequest) -> BackupDescription = |k, r| k.create_backup(&r.cluster_id);
    108 DescribeBackups(Empty) -> DescribeBackupsResponse = |k, _r| k.describe_backups().map(|backups| DescribeBackupsResponse { backups });
    109 CopyBackupToRegion(CopyBackupToRegionRequest) -> BackupDescription = |k, r| k.copy_backup_to_region(r);
    110 DeleteBackup(BackupIdRequest) -> BackupDescription = |k, r| k.delete_backup(&r.backup_id);
    111 CreateUser(UserRequest) -> UserDescription = |k, r| k.create_hsm_user(r);
    112 DeleteUser(UsernameRequest) -> Empty = |k, r| empty(k.delete_hsm_user(&r.cluster_id, &r.username));
    113 ChangePassword(UserRequest) -> Empty = |k, r| empty(k.change_hsm_user_password(r));
    114 ListUsers(ClusterIdRequest) -> ListUsersResponse = |k, r| k.list_hsm_users(&r.cluster_id).map(|users| ListUsersResponse { users });
    115 Login(UserRequest) -> Empty = |k, r| empty(k.login_hsm_user(&r.cluster_id, &r.username, &r.password));
    116 Logout(UsernameRequest) -> Empty = |k, r| empty(k.logout_hsm_user(&r.cluster_id, &r.username));
    117 ListKeyObjects(ClusterIdRequest) -> ListKeyObjectsResponse =
        |k, r| k.list_key_objects(&r.cluster_id).map(|keys| ListKeyObjectsResponse { keys });
    118 DeleteKeyObject(DeleteKeyObjectRequest) -> Empty =
        |k, r| empty(k.delete_key_object(&r.cluster_id, r.key_reference, &r.username, &r.password));
    119 AuditLog(AuditLogRequest) -> AuditLogResponse = |k, r| k.hsm_audit_log(&r.cluster_id, r.hsm_id.as_deref()).map(|streams| AuditLogResponse {
        streams: streams.into_iter().map(|(hsm_id, events)| AuditStream { hsm_id, events }).collect(),
    });
    120 InjectFault(InjectFaultRequest) -> Empty = |k, r| empty(k.inject_fault(&r.cluster_id, &r.fault));
}

/// Something that performs operations: the in-process [`Kms`], or a client of the daemon.
/// The CLI and the load generator are written against this.
pub trait Backend {
    /// Performs one operation.
    fn call(&self, request: &Request) -> Result<Response>;
}

impl Backend for Kms {
    fn call(&self, request: &Request) -> Result<Response> {
        self.dispatch(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

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
    fn dispatch_reaches_the_operation() {
        let kms = Kms::in_memory();
        let created = kms
            .dispatch(&Request::CreateKey(CreateKeyRequest::default()))
            .unwrap();
        let Response::CreateKey(created) = created else {
            panic!("wrong response {created:?}")
        };
        let req = Request::DescribeKey(KeyIdRequest {
            key_id: created.key_metadata.key_id.clone(),
            ..Default::default()
        });
        assert_eq!(req.op(), Op::DescribeKey);
        match kms.dispatch(&req).unwrap() {
            Response::DescribeKey(d) => assert_eq!(d.key_metadata.arn, created.key_metadata.arn),
            other => panic!("wrong response {other:?}"),
        }
        let e = kms
            .dispatch(&Request::DescribeKey(KeyIdRequest {
                key_id: "alias/none".into(),
                ..Default::default()
            }))
            .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFoundException);
    }
}
