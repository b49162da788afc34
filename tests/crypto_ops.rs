//! The cryptographic operations through the `Kms` API: round trips for default-store and
//! custom-store keys, limits, contexts, key states, batch forms, and restart.

mod common;

use common::*;
use kmscks::hsm::api::Fault;
use kmscks::kms::api::*;
use kmscks::secret::SecretBytes;
use kmscks::types::DataKeySpec;
use kmscks::ErrorKind;

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn encrypt(
    kms: &kmscks::Kms,
    key: &str,
    plaintext: &[u8],
    context: EncryptionContext,
) -> kmscks::Result<EncryptResponse> {
    kms.encrypt(&EncryptRequest {
        key_id: key.into(),
        plaintext: SecretBytes::from_slice(plaintext),
        encryption_context: context,
        ..Default::default()
    })
}

fn decrypt(
    kms: &kmscks::Kms,
    blob: &[u8],
    context: EncryptionContext,
) -> kmscks::Result<DecryptResponse> {
    kms.decrypt(&DecryptRequest {
        ciphertext_blob: blob.to_vec(),
        encryption_context: context,
        ..Default::default()
    })
}

#[test]
fn round_trips_for_default_and_store_keys() {
    let (kms, _clock) = kms();
    let f = connected_store(&kms, "crypto");
    for key in [create_key(&kms, None), create_key(&kms, Some(&f.store_id))] {
        let arn = describe_key(&kms, &key).arn;
        let c = ctx(&[("purpose", "test"), ("tenant", "7")]);
        let enc = encrypt(&kms, &key, b"hello kmscks", c.clone()).unwrap();
        assert_eq!(*enc.key_id, *arn);
        assert_ne!(&enc.ciphertext_blob[..], b"hello kmscks");
        let dec = decrypt(&kms, &enc.ciphertext_blob, c).unwrap();
        assert_eq!(dec.plaintext.expose(), b"hello kmscks");
        assert_eq!(*dec.key_id, *arn);
        // A different context fails as AWS does.
        assert_aws(
            decrypt(&kms, &enc.ciphertext_blob, ctx(&[("purpose", "other")])),
            ErrorKind::InvalidCiphertextException,
        );

        let gdk = kms
            .generate_data_key(&GenerateDataKeyRequest {
                key_id: key.clone(),
                key_spec: Some(DataKeySpec::Aes256),
                ..Default::default()
            })
            .unwrap();
        let plain = gdk
            .plaintext
            .expect("GenerateDataKey returns the plaintext");
        assert_eq!(plain.len(), 32);
        assert_eq!(
            decrypt(&kms, &gdk.ciphertext_blob, ctx(&[]))
                .unwrap()
                .plaintext
                .expose(),
            plain.expose()
        );
        let without = kms
            .generate_data_key_without_plaintext(&GenerateDataKeyRequest {
                key_id: key.clone(),
                number_of_bytes: Some(64),
                ..Default::default()
            })
            .unwrap();
        assert!(without.plaintext.is_none());
        assert_eq!(
            decrypt(&kms, &without.ciphertext_blob, ctx(&[]))
                .unwrap()
                .plaintext
                .len(),
            64
        );
    }
}

#[test]
fn store_keys_follow_the_store_and_cluster() {
    let (kms, _clock) = kms();
    let f = connected_store(&kms, "follow");
    let key = create_key(&kms, Some(&f.store_id));
    let enc = encrypt(&kms, &key, b"data", ctx(&[])).unwrap();

    disconnect(&kms, &f.store_id);
    let e = assert_aws(
        encrypt(&kms, &key, b"data", ctx(&[])),
        ErrorKind::KMSInvalidStateException,
    );
    assert!(e.message().ends_with("is unavailable."), "{e}");
    assert_aws(
        decrypt(&kms, &enc.ciphertext_blob, ctx(&[])),
        ErrorKind::KMSInvalidStateException,
    );
    assert_aws(
        kms.generate_random(&GenerateRandomRequest {
            number_of_bytes: Some(16),
            custom_key_store_id: Some(f.store_id.clone()),
        }),
        ErrorKind::CustomKeyStoreInvalidStateException,
    );

    connect(&kms, &f.store_id);
    assert_eq!(
        decrypt(&kms, &enc.ciphertext_blob, ctx(&[]))
            .unwrap()
            .plaintext
            .expose(),
        b"data"
    );
    let r = kms
        .generate_random(&GenerateRandomRequest {
            number_of_bytes: Some(16),
            custom_key_store_id: Some(f.store_id.clone()),
        })
        .unwrap();
    assert_eq!(r.plaintext.len(), 16);

    kms.disable_key(&key_req(&key)).unwrap();
    assert_aws(
        encrypt(&kms, &key, b"data", ctx(&[])),
        ErrorKind::DisabledException,
    );
    kms.enable_key(&key_req(&key)).unwrap();

    kms.inject_fault(&f.cluster.cluster_id, &Fault::NetworkDown)
        .unwrap();
    assert_aws(
        encrypt(&kms, &key, b"data", ctx(&[])),
        ErrorKind::KMSInvalidStateException,
    );
    kms.inject_fault(&f.cluster.cluster_id, &Fault::NetworkRestored)
        .unwrap();
    assert_eq!(
        decrypt(&kms, &enc.ciphertext_blob, ctx(&[]))
            .unwrap()
            .plaintext
            .expose(),
        b"data"
    );

    // Every HSM lost: nothing can serve the key.
    let hsms: Vec<_> = kms
        .describe_clusters(&Default::default())
        .unwrap()
        .clusters
        .into_iter()
        .find(|c| c.cluster_id.as_str() == f.cluster.cluster_id)
        .unwrap()
        .hsms;
    for h in hsms {
        kms.inject_fault(&f.cluster.cluster_id, &Fault::HsmLost(h.hsm_id))
            .unwrap();
    }
    assert_aws(
        encrypt(&kms, &key, b"data", ctx(&[])),
        ErrorKind::KMSInvalidStateException,
    );
}

#[test]
fn batch_forms_answer_each_item() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let reqs: Vec<EncryptRequest> = (0..40)
        .map(|i| EncryptRequest {
            key_id: if i == 7 {
                "alias/missing".into()
            } else {
                key.clone()
            },
            plaintext: SecretBytes::new(vec![i as u8; 1 + i]),
            ..Default::default()
        })
        .collect();
    let out = kms.encrypt_batch(&reqs);
    assert_eq!(out.len(), 40);
    assert_aws(out[7].clone().map(|_| ()), ErrorKind::NotFoundException);
    let blobs: Vec<DecryptRequest> = out
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 7)
        .map(|(_, r)| DecryptRequest {
            ciphertext_blob: r.as_ref().unwrap().ciphertext_blob.clone(),
            ..Default::default()
        })
        .collect();
    let plain = kms.decrypt_batch(&blobs);
    for (n, (i, p)) in (0..40).filter(|i| *i != 7).zip(plain).enumerate() {
        assert_eq!(
            p.unwrap().plaintext.expose(),
            &vec![i as u8; 1 + i][..],
            "item {n}"
        );
    }
    let gdk: Vec<GenerateDataKeyRequest> = (0..10)
        .map(|_| GenerateDataKeyRequest {
            key_id: key.clone(),
            key_spec: Some(DataKeySpec::Aes128),
            ..Default::default()
        })
        .collect();
    for r in kms.generate_data_key_batch(&gdk, true) {
        assert_eq!(r.unwrap().plaintext.unwrap().len(), 16);
    }
}

#[test]
fn ciphertexts_decrypt_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, _clock) = config();
    // Small enough that the state is compacted into snapshots along the way.
    config.compact_after_bytes = 2048;
    let (blobs, store_id) = {
        let kms = kmscks::Kms::open_with(dir.path(), config.clone()).unwrap();
        let f = connected_store(&kms, "restart");
        let keys = [create_key(&kms, None), create_key(&kms, Some(&f.store_id))];
        let blobs: Vec<Vec<u8>> = keys
            .iter()
            .map(|k| {
                encrypt(&kms, k, b"survives", ctx(&[("a", "b")]))
                    .unwrap()
                    .ciphertext_blob
            })
            .collect();
        (blobs, f.store_id)
    };
    let kms = kmscks::Kms::open_with(dir.path(), config).unwrap();
    assert_eq!(
        connection_state(&kms, &store_id),
        kmscks::types::ConnectionState::Connected
    );
    for blob in blobs {
        assert_eq!(
            decrypt(&kms, &blob, ctx(&[("a", "b")]))
                .unwrap()
                .plaintext
                .expose(),
            b"survives"
        );
    }
}
