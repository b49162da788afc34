//! [`Kms::dispatch`]: any operation of the table ([`crate::ops`]) performed by the [`Kms`]
//! handle, and the handle as a [`Backend`].
//!
//! The match is generated from the operation table ([`for_each_op!`]); how the handle performs
//! each operation is the rule of that name in `perform!` below. An operation added to the
//! table without its rule here fails to compile ("no rules expected the token").

use std::time::Duration;

use super::BatchScratch;
use crate::api::hsm::*;
use crate::api::kms::*;
use crate::error::{KmsError, Result};
use crate::ops::{for_each_op, Backend, Request, Response};
use crate::Kms;

fn empty(r: Result<()>) -> Result<Empty> {
    r.map(|()| Empty {})
}

/// `perform!(Name, kms, request)`: how `kms` performs the operation `Name` on `request` (a
/// reference to the operation's request struct), as a `Result` of its response struct.
macro_rules! perform {
    // ---- Custom key stores
    (CreateCustomKeyStore, $k:ident, $r:ident) => {
        $k.create_custom_key_store($r)
    };
    (DescribeCustomKeyStores, $k:ident, $r:ident) => {
        $k.describe_custom_key_stores($r)
    };
    (UpdateCustomKeyStore, $k:ident, $r:ident) => {
        $k.update_custom_key_store($r)
    };
    (DeleteCustomKeyStore, $k:ident, $r:ident) => {
        $k.delete_custom_key_store($r)
    };
    (ConnectCustomKeyStore, $k:ident, $r:ident) => {
        $k.connect_custom_key_store($r)
    };
    (DisconnectCustomKeyStore, $k:ident, $r:ident) => {
        $k.disconnect_custom_key_store($r)
    };
    (WaitForConnection, $k:ident, $r:ident) => {
        $k.wait_for_connection(
            &$r.custom_key_store_id,
            Duration::from_millis($r.timeout_millis),
        )
    };
    // ---- Keys
    (CreateKey, $k:ident, $r:ident) => {
        $k.create_key($r)
    };
    (DescribeKey, $k:ident, $r:ident) => {
        $k.describe_key($r)
    };
    (ListKeys, $k:ident, $r:ident) => {
        $k.list_keys($r)
    };
    (EnableKey, $k:ident, $r:ident) => {
        $k.enable_key($r)
    };
    (DisableKey, $k:ident, $r:ident) => {
        $k.disable_key($r)
    };
    (UpdateKeyDescription, $k:ident, $r:ident) => {
        $k.update_key_description($r)
    };
    (ScheduleKeyDeletion, $k:ident, $r:ident) => {
        $k.schedule_key_deletion($r)
    };
    (CancelKeyDeletion, $k:ident, $r:ident) => {
        $k.cancel_key_deletion($r)
    };
    (PutKeyPolicy, $k:ident, $r:ident) => {
        $k.put_key_policy($r)
    };
    (GetKeyPolicy, $k:ident, $r:ident) => {
        $k.get_key_policy($r)
    };
    (ListKeyPolicies, $k:ident, $r:ident) => {
        $k.list_key_policies($r)
    };
    (TagResource, $k:ident, $r:ident) => {
        $k.tag_resource($r)
    };
    (UntagResource, $k:ident, $r:ident) => {
        $k.untag_resource($r)
    };
    (ListResourceTags, $k:ident, $r:ident) => {
        $k.list_resource_tags($r)
    };
    (CreateAlias, $k:ident, $r:ident) => {
        $k.create_alias($r)
    };
    (UpdateAlias, $k:ident, $r:ident) => {
        $k.update_alias($r)
    };
    (DeleteAlias, $k:ident, $r:ident) => {
        $k.delete_alias($r)
    };
    (ListAliases, $k:ident, $r:ident) => {
        $k.list_aliases($r)
    };
    (GetKeyLastUsage, $k:ident, $r:ident) => {
        $k.get_key_last_usage($r)
    };
    (GetKeyRotationStatus, $k:ident, $r:ident) => {
        $k.get_key_rotation_status($r)
    };
    (Refused, $k:ident, $r:ident) => {
        $k.refused(
            $r.operation,
            &KeyIdRequest {
                key_id: $r.key_id.clone(),
                ..Default::default()
            },
        )
    };
    (LookupEvents, $k:ident, $r:ident) => {
        $k.lookup_events($r)
    };
    (CreateGrant, $k:ident, $r:ident) => {
        $k.create_grant($r)
    };
    (ListGrants, $k:ident, $r:ident) => {
        $k.list_grants($r)
    };
    (ListRetirableGrants, $k:ident, $r:ident) => {
        $k.list_retirable_grants($r)
    };
    (RetireGrant, $k:ident, $r:ident) => {
        $k.retire_grant($r)
    };
    (RevokeGrant, $k:ident, $r:ident) => {
        $k.revoke_grant($r)
    };
    (EnableKeyRotation, $k:ident, $r:ident) => {
        $k.enable_key_rotation($r)
    };
    (DisableKeyRotation, $k:ident, $r:ident) => {
        $k.disable_key_rotation($r)
    };
    (RotateKeyOnDemand, $k:ident, $r:ident) => {
        $k.rotate_key_on_demand($r)
    };
    (ListKeyRotations, $k:ident, $r:ident) => {
        $k.list_key_rotations($r)
    };
    (GetParametersForImport, $k:ident, $r:ident) => {
        $k.get_parameters_for_import($r)
    };
    (ImportKeyMaterial, $k:ident, $r:ident) => {
        $k.import_key_material($r)
    };
    (DeleteImportedKeyMaterial, $k:ident, $r:ident) => {
        $k.delete_imported_key_material($r)
    };
    // ---- Cryptographic operations
    (Encrypt, $k:ident, $r:ident) => {
        $k.encrypt($r)
    };
    (Decrypt, $k:ident, $r:ident) => {
        $k.decrypt($r)
    };
    (ReEncrypt, $k:ident, $r:ident) => {
        $k.re_encrypt($r)
    };
    (GenerateDataKey, $k:ident, $r:ident) => {
        $k.generate_data_key($r)
    };
    (GenerateDataKeyWithoutPlaintext, $k:ident, $r:ident) => {
        $k.generate_data_key_without_plaintext($r)
    };
    (GenerateDataKeyPair, $k:ident, $r:ident) => {
        $k.generate_data_key_pair($r)
    };
    (GenerateDataKeyPairWithoutPlaintext, $k:ident, $r:ident) => {
        $k.generate_data_key_pair_without_plaintext($r)
    };
    (GenerateRandom, $k:ident, $r:ident) => {
        $k.generate_random($r)
    };
    (EncryptBatch, $k:ident, $r:ident) => {
        Ok(BatchResponse::from_results($k.encrypt_batch(&$r.items)))
    };
    (DecryptBatch, $k:ident, $r:ident) => {
        Ok(BatchResponse::from_results($k.decrypt_batch(&$r.items)))
    };
    (GenerateDataKeyBatch, $k:ident, $r:ident) => {
        Ok(BatchResponse::from_results(
            $k.generate_data_key_batch(&$r.items, true),
        ))
    };
    (GenerateDataKeyWithoutPlaintextBatch, $k:ident, $r:ident) => {
        Ok(BatchResponse::from_results(
            $k.generate_data_key_batch(&$r.items, false),
        ))
    };
    (GenerateMac, $k:ident, $r:ident) => {
        $k.generate_mac($r)
    };
    (VerifyMac, $k:ident, $r:ident) => {
        $k.verify_mac($r)
    };
    (Sign, $k:ident, $r:ident) => {
        $k.sign($r)
    };
    (Verify, $k:ident, $r:ident) => {
        $k.verify($r)
    };
    (GetPublicKey, $k:ident, $r:ident) => {
        $k.get_public_key($r)
    };
    (DeriveSharedSecret, $k:ident, $r:ident) => {
        $k.derive_shared_secret($r)
    };
    // ---- Simulated CloudHSM
    (CreateCluster, $k:ident, $r:ident) => {
        $k.create_cluster($r)
    };
    (DescribeClusters, $k:ident, $r:ident) => {
        $k.describe_clusters($r)
    };
    (DeleteCluster, $k:ident, $r:ident) => {
        $k.delete_cluster($r)
    };
    (CreateHsm, $k:ident, $r:ident) => {
        $k.create_hsm($r)
    };
    (DeleteHsm, $k:ident, $r:ident) => {
        $k.delete_hsm($r)
    };
    (InitializeCluster, $k:ident, $r:ident) => {
        $k.initialize_cluster($r)
    };
    (InitializeClusterWithNewCa, $k:ident, $r:ident) => {
        $k.initialize_cluster_with_new_ca($r)
    };
    (ActivateCluster, $k:ident, $r:ident) => {
        $k.activate_cluster($r)
    };
    (ModifyCluster, $k:ident, $r:ident) => {
        $k.modify_cluster($r)
    };
    (ModifyBackupAttributes, $k:ident, $r:ident) => {
        $k.modify_backup_attributes($r)
    };
    (TagHsmResource, $k:ident, $r:ident) => {
        empty($k.tag_hsm_resource($r))
    };
    (UntagHsmResource, $k:ident, $r:ident) => {
        empty($k.untag_hsm_resource($r))
    };
    (ListHsmTags, $k:ident, $r:ident) => {
        $k.list_hsm_tags($r)
    };
    (CreateBackup, $k:ident, $r:ident) => {
        $k.create_backup(&$r.cluster_id)
    };
    (DescribeBackups, $k:ident, $r:ident) => {
        $k.describe_backups($r)
    };
    (CopyBackupToRegion, $k:ident, $r:ident) => {
        $k.copy_backup_to_region($r)
    };
    (DeleteBackup, $k:ident, $r:ident) => {
        $k.delete_backup($r)
    };
    (CreateUser, $k:ident, $r:ident) => {
        $k.create_hsm_user($r)
    };
    (DeleteUser, $k:ident, $r:ident) => {
        empty($k.delete_hsm_user(&$r.cluster_id, &$r.username))
    };
    (ChangePassword, $k:ident, $r:ident) => {
        empty($k.change_hsm_user_password($r))
    };
    (ListUsers, $k:ident, $r:ident) => {
        $k.list_hsm_users(&$r.cluster_id)
            .map(|users| ListUsersResponse { users })
    };
    (Login, $k:ident, $r:ident) => {
        empty($k.login_hsm_user(&$r.cluster_id, &$r.username, &$r.password))
    };
    (Logout, $k:ident, $r:ident) => {
        empty($k.logout_hsm_user(&$r.cluster_id, &$r.username))
    };
    (ListKeyObjects, $k:ident, $r:ident) => {
        $k.list_key_objects(&$r.cluster_id)
            .map(|keys| ListKeyObjectsResponse { keys })
    };
    (DeleteKeyObject, $k:ident, $r:ident) => {
        empty($k.delete_key_object(&$r.cluster_id, $r.key_reference, &$r.username, &$r.password))
    };
    (AuditLog, $k:ident, $r:ident) => {
        $k.hsm_audit_log(&$r.cluster_id, $r.hsm_id.as_deref())
            .map(|streams| AuditLogResponse {
                streams: streams
                    .into_iter()
                    .map(|(hsm_id, events)| AuditStream { hsm_id, events })
                    .collect(),
            })
    };
    (InjectFault, $k:ident, $r:ident) => {
        empty($k.inject_fault(&$r.cluster_id, &$r.fault))
    };
    (RestoreBackup, $k:ident, $r:ident) => {
        $k.restore_backup($r)
    };
    (ListFaults, $k:ident, $r:ident) => {
        $k.list_faults(&$r.cluster_id)
            .map(|faults| ListFaultsResponse { faults })
    };
}

macro_rules! dispatch {
    ($( $code:literal $name:ident ($req:ty) -> $resp:ty [$($action:tt)*]; )*) => {
        impl Kms {
            /// Performs any operation, as the handle's principal. A KMS call that fails is
            /// recorded in the event log with its error (not journaled: it changed nothing).
            #[allow(unused_variables)] // the rules of operations without a request ignore it
            pub fn dispatch(&self, request: &Request) -> Result<Response> {
                let out = match request {
                    $( Request::$name(r) => perform!($name, self, r).map(|r| Response::$name(r.into())), )*
                };
                if let Err(e) = &out {
                    self.record_failure(request, e);
                }
                out
            }
        }
    };
}

for_each_op!(dispatch);

/// The borrowed methods answer from the borrowed request itself: no owned request, no
/// envelope, a batch's answers lent straight from the engine's buffers.
impl Backend for Kms {
    fn call(&self, request: &Request) -> Result<Response> {
        self.dispatch(request)
    }

    fn generate_data_key_borrowed(
        &self,
        request: &GenerateDataKeyRequestRef<'_>,
        with_plaintext: bool,
    ) -> Result<GenerateDataKeyResponse> {
        self.data_key(request, with_plaintext)
    }

    fn encrypt_borrowed(&self, request: &EncryptRequestRef<'_>) -> Result<EncryptResponse> {
        self.encrypt_ref(request)
    }

    fn decrypt_borrowed(&self, request: &DecryptRequestRef<'_>) -> Result<DecryptResponse> {
        self.decrypt_ref(request)
    }

    fn generate_data_key_batch_borrowed(
        &self,
        items: &[GenerateDataKeyRequestRef<'_>],
        with_plaintext: bool,
        emit: &mut dyn FnMut(std::result::Result<GenerateDataKeyResponseRef<'_>, &KmsError>),
    ) -> Result<()> {
        with_scratch(items.len(), |scratch| {
            self.generate_data_key_batch_with(items, with_plaintext, scratch, |r| {
                emit(r.map(|v| GenerateDataKeyResponseRef {
                    ciphertext_blob: v.ciphertext_blob,
                    plaintext: v.plaintext,
                    key_id: v.key_arn,
                }))
            })
        });
        Ok(())
    }

    fn encrypt_batch_borrowed(
        &self,
        items: &[EncryptRequestRef<'_>],
        emit: &mut dyn FnMut(std::result::Result<EncryptResponseRef<'_>, &KmsError>),
    ) -> Result<()> {
        with_scratch(items.len(), |scratch| {
            self.encrypt_batch_with(items, scratch, |r| {
                emit(r.map(|v| EncryptResponseRef {
                    ciphertext_blob: v.ciphertext_blob,
                    key_id: v.key_arn,
                }))
            })
        });
        Ok(())
    }
}

/// The largest batch whose scratch a thread keeps for its next borrowed batch: what it keeps
/// is capacity for this many answers (about 1 MiB for 4 KiB plaintexts).
const KEEP_SCRATCH_ITEMS: usize = 256;

thread_local! {
    /// The scratch of the calling thread's borrowed batches, reused so that a warm batch
    /// allocates only what it hands out. Each batch wipes its answers from it before
    /// returning (`Kms::encrypt_batch_with`): what it keeps between batches is capacity.
    static SCRATCH: std::cell::RefCell<BatchScratch> = Default::default();
}

/// Runs `batch` with the thread's scratch, or with a fresh one for a batch larger than
/// [`KEEP_SCRATCH_ITEMS`], while the thread's is in use (an `emit` running a batch of its own)
/// or when the thread is exiting.
fn with_scratch(items: usize, batch: impl FnOnce(&mut BatchScratch)) {
    let mut batch = Some(batch);
    if items <= KEEP_SCRATCH_ITEMS {
        let _ = SCRATCH.try_with(|cell| {
            if let Ok(mut scratch) = cell.try_borrow_mut() {
                if let Some(batch) = batch.take() {
                    batch(&mut scratch);
                }
            }
        });
    }
    if let Some(batch) = batch {
        batch(&mut BatchScratch::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::Op;

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

    /// A backend with only `call`: the trait's default borrowed methods, as the client has.
    struct Enveloped<'a>(&'a Kms);

    impl Backend for Enveloped<'_> {
        fn call(&self, request: &Request) -> Result<Response> {
            self.0.call(request)
        }
    }

    /// Decrypts `blob` with `context` through the owned API: the plaintext.
    fn decrypted(kms: &Kms, blob: &[u8], context: &crate::types::EncryptionContext) -> Vec<u8> {
        let r = kms
            .decrypt(&DecryptRequest {
                ciphertext_blob: blob.to_vec(),
                encryption_context: context.clone(),
                ..Default::default()
            })
            .expect("a blob this instance made decrypts");
        r.plaintext.expose().to_vec()
    }

    #[test]
    fn the_borrowed_methods_answer_as_the_envelope_does() {
        let kms = Kms::in_memory();
        let key = kms.create_key(&CreateKeyRequest::default()).unwrap();
        let arn = key.key_metadata.arn.clone();
        let key_id = key.key_metadata.key_id.as_str();
        let context: crate::types::EncryptionContext =
            [("purpose".to_owned(), "test".to_owned())].into();
        let data_key = GenerateDataKeyRequestRef {
            key_id,
            key_spec: None,
            number_of_bytes: Some(32),
            encryption_context: &context,
            grant_tokens: &[],
            dry_run: false,
        };
        let plaintext = b"borrowed";
        let encrypt = EncryptRequestRef {
            key_id,
            plaintext,
            encryption_context: &context,
            grant_tokens: &[],
            encryption_algorithm: None,
            dry_run: false,
        };
        let missing = GenerateDataKeyRequestRef {
            key_id: "alias/missing",
            ..data_key
        };
        let direct: &dyn Backend = &kms;
        for backend in [direct, &Enveloped(&kms)] {
            let dk = backend.generate_data_key_borrowed(&data_key, true).unwrap();
            assert_eq!(&*dk.key_id, arn.as_str());
            let key_bytes = dk.plaintext.as_ref().expect("with plaintext").expose();
            assert_eq!(key_bytes.len(), 32);
            assert_eq!(decrypted(&kms, &dk.ciphertext_blob, &context), key_bytes);
            let without = backend
                .generate_data_key_borrowed(&data_key, false)
                .unwrap();
            assert!(without.plaintext.is_none());

            let enc = backend.encrypt_borrowed(&encrypt).unwrap();
            let dec = backend
                .decrypt_borrowed(&DecryptRequestRef {
                    ciphertext_blob: &enc.ciphertext_blob,
                    encryption_context: &context,
                    grant_tokens: &[],
                    key_id: None,
                    encryption_algorithm: None,
                    dry_run: false,
                })
                .unwrap();
            assert_eq!(dec.plaintext.expose(), plaintext);
            let wrong_context = DecryptRequestRef {
                ciphertext_blob: &enc.ciphertext_blob,
                encryption_context: &crate::types::EncryptionContext::new(),
                grant_tokens: &[],
                key_id: None,
                encryption_algorithm: None,
                dry_run: false,
            };
            let e = backend.decrypt_borrowed(&wrong_context).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidCiphertextException);

            // A batch lends one answer per item, in order, a failed item as its error.
            let mut answers = Vec::new();
            backend
                .generate_data_key_batch_borrowed(&[data_key, missing, data_key], true, &mut |r| {
                    let answer = r.map(|v| (v.plaintext.map(<[u8]>::len), v.key_id.to_owned()));
                    answers.push(answer.map_err(|e| e.kind()))
                })
                .unwrap();
            let ok = Ok((Some(32), arn.clone()));
            let kinds = [ok.clone(), Err(crate::ErrorKind::NotFoundException), ok];
            assert_eq!(answers, kinds);

            let mut blobs = Vec::new();
            backend
                .encrypt_batch_borrowed(&[encrypt, encrypt], &mut |r| {
                    blobs.push(r.expect("encrypts").ciphertext_blob.to_vec())
                })
                .unwrap();
            assert_eq!(blobs.len(), 2);
            for blob in &blobs {
                assert_eq!(decrypted(&kms, blob, &context), plaintext);
            }
        }
    }

    #[test]
    fn a_borrowed_batch_run_from_inside_another_ones_emit_gets_a_scratch_of_its_own() {
        let kms = Kms::in_memory();
        let key = kms.create_key(&CreateKeyRequest::default()).unwrap();
        let context = crate::types::EncryptionContext::new();
        let item = EncryptRequestRef {
            key_id: &key.key_metadata.key_id,
            plaintext: b"outer",
            encryption_context: &context,
            grant_tokens: &[],
            encryption_algorithm: None,
            dry_run: false,
        };
        let inner_item = EncryptRequestRef {
            plaintext: b"inner",
            ..item
        };
        let (mut outer, mut inner) = (Vec::new(), Vec::new());
        kms.encrypt_batch_borrowed(&[item, item], &mut |r| {
            outer.push(r.expect("encrypts").ciphertext_blob.to_vec());
            kms.encrypt_batch_borrowed(&[inner_item], &mut |r| {
                inner.push(r.expect("encrypts").ciphertext_blob.to_vec())
            })
            .unwrap();
        })
        .unwrap();
        assert_eq!((outer.len(), inner.len()), (2, 2));
        for blob in &outer {
            assert_eq!(decrypted(&kms, blob, &context), b"outer");
        }
        for blob in &inner {
            assert_eq!(decrypted(&kms, blob, &context), b"inner");
        }
    }

    #[test]
    fn the_engines_action_names_are_the_op_tables() {
        use crate::engine::Action;
        for &action in Action::ALL {
            // Exhaustive: a new engine action must say which operation it belongs to.
            let op = match action {
                Action::Encrypt => Op::Encrypt,
                Action::Decrypt => Op::Decrypt,
                Action::ReEncryptFrom | Action::ReEncryptTo => Op::ReEncrypt,
                Action::GenerateDataKey => Op::GenerateDataKey,
                Action::GenerateDataKeyWithoutPlaintext => Op::GenerateDataKeyWithoutPlaintext,
                Action::GenerateRandom => Op::GenerateRandom,
                Action::GenerateMac => Op::GenerateMac,
                Action::VerifyMac => Op::VerifyMac,
                Action::Sign => Op::Sign,
                Action::Verify => Op::Verify,
                Action::GetPublicKey => Op::GetPublicKey,
                Action::GenerateDataKeyPair => Op::GenerateDataKeyPair,
                Action::GenerateDataKeyPairWithoutPlaintext => {
                    Op::GenerateDataKeyPairWithoutPlaintext
                }
                Action::DeriveSharedSecret => Op::DeriveSharedSecret,
            };
            assert!(
                op.actions().iter().any(|a| a.as_str() == action.as_str()),
                "engine action {} is not among {op:?}'s {:?}",
                action.as_str(),
                op.actions()
            );
        }
    }
}
