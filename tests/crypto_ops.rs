//! The cryptographic operations through the `Kms` API: round trips for default-store and
//! custom-store keys, limits, contexts, key states, batch forms, and restart.

mod common;

use common::*;
use kmscks::api::hsm::Fault;
use kmscks::api::kms::*;
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
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "crypto");
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
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "follow");
    let key = create_key(&kms, Some(&f.store_id));
    let enc = encrypt(&kms, &key, b"data", ctx(&[])).unwrap();

    disconnect(&kms, &clock, &f.store_id);
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

    connect(&kms, &clock, &f.store_id);
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

/// Encrypts `n` plaintexts in one batch (item `i` is `i + 1` bytes of `i`), the items of
/// `refused` naming a missing alias, then decrypts the others in one batch: each answer is
/// checked against its own item, in order.
fn encrypt_then_decrypt_in_batches(kms: &kmscks::Kms, key: &str, n: usize, refused: &[usize]) {
    let reqs: Vec<EncryptRequest> = (0..n)
        .map(|i| EncryptRequest {
            key_id: if refused.contains(&i) {
                "alias/missing".into()
            } else {
                key.to_owned()
            },
            plaintext: SecretBytes::new(vec![i as u8; 1 + i]),
            ..Default::default()
        })
        .collect();
    let out = kms.encrypt_batch(&reqs);
    assert_eq!(out.len(), n);
    for &i in refused {
        assert_aws(out[i].clone().map(|_| ()), ErrorKind::NotFoundException);
    }
    let kept: Vec<usize> = (0..n).filter(|i| !refused.contains(i)).collect();
    let blobs: Vec<DecryptRequest> = kept
        .iter()
        .map(|&i| DecryptRequest {
            ciphertext_blob: out[i].as_ref().unwrap().ciphertext_blob.clone(),
            ..Default::default()
        })
        .collect();
    let plain = kms.decrypt_batch(&blobs);
    assert_eq!(plain.len(), kept.len());
    for (&i, p) in kept.iter().zip(plain) {
        assert_eq!(
            p.unwrap().plaintext.expose(),
            &vec![i as u8; 1 + i][..],
            "item {i}"
        );
    }
}

#[test]
fn batch_forms_answer_each_item() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    encrypt_then_decrypt_in_batches(&kms, &key, 40, &[7]);
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
fn a_batch_longer_than_one_pass_through_the_engine_answers_every_item_in_order() {
    // The owned batch calls run through the engine a chunk at a time: answers and refusals
    // must still come back one per item, in the items' order, across the chunks' seams.
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    encrypt_then_decrypt_in_batches(&kms, &key, 150, &[7, 70, 140]);
    let gdk: Vec<GenerateDataKeyRequest> = (0..150)
        .map(|i| GenerateDataKeyRequest {
            key_id: key.clone(),
            number_of_bytes: Some(1 + (i % 64) as u32),
            ..Default::default()
        })
        .collect();
    let keys = kms.generate_data_key_batch(&gdk, true);
    assert_eq!(keys.len(), 150);
    for (i, r) in keys.into_iter().enumerate() {
        assert_eq!(r.unwrap().plaintext.unwrap().len(), 1 + i % 64, "item {i}");
    }
}

#[test]
fn a_batch_of_items_alike_longer_than_a_run_answers_each_with_a_data_key_of_its_own() {
    // Items alike go to the engine a run at a time (at most 32 each): 70 make three runs,
    // and each item still gets its own data key, sealed under its context.
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "runs");
    for key in [create_key(&kms, None), create_key(&kms, Some(&f.store_id))] {
        batch_of_alike_items(&kms, &key);
    }
}

/// A batch of 70 GenerateDataKey items alike on `key`, owned and lent: each answered with a
/// data key of its own that opens under the items' context only.
fn batch_of_alike_items(kms: &kmscks::Kms, key: &str) {
    let arn = describe_key(kms, key).arn;
    let c = ctx(&[("tenant", "7")]);
    let gdk: Vec<GenerateDataKeyRequest> = (0..70)
        .map(|_| GenerateDataKeyRequest {
            key_id: key.to_string(),
            key_spec: Some(DataKeySpec::Aes256),
            encryption_context: c.clone(),
            ..Default::default()
        })
        .collect();
    let mut seen = std::collections::HashSet::new();
    let mut check = |i: usize, blob: &[u8], data_key: &[u8], key_id: &str| {
        assert_eq!(key_id, &*arn, "item {i}");
        assert_eq!(data_key.len(), 32, "item {i}");
        assert!(
            seen.insert(data_key.to_vec()),
            "item {i} repeats a data key"
        );
        let opened = decrypt(kms, blob, c.clone()).unwrap();
        assert_eq!(opened.plaintext.expose(), data_key, "item {i}");
        assert_aws(
            decrypt(kms, blob, EncryptionContext::new()),
            ErrorKind::InvalidCiphertextException,
        );
    };
    let owned = kms.generate_data_key_batch(&gdk, true);
    assert_eq!(owned.len(), 70);
    for (i, r) in owned.iter().enumerate() {
        let r = r.as_ref().unwrap();
        check(
            i,
            &r.ciphertext_blob,
            r.plaintext.as_ref().unwrap().expose(),
            &r.key_id,
        );
    }
    // The lent form (the daemon's), with its scratch reused.
    let refs: Vec<_> = gdk.iter().map(GenerateDataKeyRequest::borrowed).collect();
    let mut scratch = kmscks::BatchScratch::default();
    for _ in 0..2 {
        let mut i = 0;
        kms.generate_data_key_batch_with(&refs, true, &mut scratch, |r| {
            let v = r.unwrap();
            check(i + 70, v.ciphertext_blob, v.plaintext.unwrap(), v.key_arn);
            i += 1;
        });
        assert_eq!(i, 70);
    }
    // Without the plaintext: no data key handed out, and each blob holds one of its own.
    let mut blobs = Vec::new();
    kms.generate_data_key_batch_with(&refs, false, &mut scratch, |r| {
        let v = r.unwrap();
        assert!(v.plaintext.is_none());
        blobs.push(v.ciphertext_blob.to_vec());
    });
    assert_eq!(blobs.len(), 70);
    for (i, blob) in blobs.iter().enumerate() {
        let opened = decrypt(kms, blob, c.clone()).unwrap();
        assert_eq!(opened.plaintext.len(), 32);
        let data_key = opened.plaintext.expose().to_vec();
        assert!(seen.insert(data_key), "item {i} repeats a data key");
    }
}

#[test]
fn a_batch_mixing_keys_sizes_contexts_and_dry_runs_answers_each_item_as_a_single_call_does() {
    // Runs end wherever the next item differs: another key, size, context, or grant tokens;
    // a dry run inside a run answers for itself.
    let (kms, _clock) = kms();
    let (a, b) = (create_key(&kms, None), create_key(&kms, None));
    let (arn_a, arn_b) = (describe_key(&kms, &a).arn, describe_key(&kms, &b).arn);
    let (none, one) = (EncryptionContext::new(), ctx(&[("purpose", "one")]));
    let item =
        |key: &str, bytes: u32, c: &EncryptionContext, dry_run: bool| GenerateDataKeyRequest {
            key_id: key.to_string(),
            number_of_bytes: Some(bytes),
            encryption_context: c.clone(),
            dry_run,
            ..Default::default()
        };
    let with_tokens = |tokens: &[&str]| GenerateDataKeyRequest {
        grant_tokens: tokens.iter().map(|t| t.to_string()).collect(),
        ..item(&a, 32, &none, false)
    };
    let items = vec![
        item(&a, 32, &none, false),
        item(&a, 32, &none, false),
        with_tokens(&["a-grant-token"]),
        with_tokens(&[""]),
        item(&a, 32, &none, false),
        item(&a, 32, &none, true),
        item(&a, 32, &none, false),
        item(&b, 32, &none, false),
        item(&b, 32, &none, false),
        item(&a, 32, &one, false),
        item(&a, 32, &one, false),
        item(&a, 16, &one, false),
        item(&a, 16, &one, false),
        item(&b, 0, &none, false),
        item(&b, 0, &none, false),
        item(&a, 32, &none, false),
    ];
    let out = kms.generate_data_key_batch(&items, true);
    assert_eq!(out.len(), items.len());
    for (i, (req, r)) in items.iter().zip(out).enumerate() {
        if req.dry_run {
            assert_aws(r.map(|_| ()), ErrorKind::DryRunOperationException);
            continue;
        }
        match kms.generate_data_key(req) {
            Err(e) => {
                let got = r.unwrap_err();
                assert_eq!(
                    (got.kind(), got.message()),
                    (e.kind(), e.message()),
                    "item {i}"
                );
            }
            Ok(_) => {
                let r = r.unwrap();
                let arn = if req.key_id == a { &arn_a } else { &arn_b };
                assert_eq!(&*r.key_id, &**arn, "item {i}");
                let data_key = r.plaintext.unwrap();
                assert_eq!(data_key.len(), req.number_of_bytes.unwrap() as usize);
                let opened = decrypt(&kms, &r.ciphertext_blob, req.encryption_context.clone());
                assert_eq!(
                    opened.unwrap().plaintext.expose(),
                    data_key.expose(),
                    "item {i}"
                );
            }
        }
    }
}

#[test]
fn a_batch_item_of_a_refused_data_key_size_answers_as_a_single_call_does() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let sizes = [
        (None, Some(16)),
        (None, None),
        (Some(DataKeySpec::Aes256), Some(32)),
        (None, Some(0)),
        (None, Some(1025)),
        (Some(DataKeySpec::Aes128), None),
    ];
    let reqs: Vec<GenerateDataKeyRequest> = sizes
        .iter()
        .map(|&(key_spec, number_of_bytes)| GenerateDataKeyRequest {
            key_id: key.clone(),
            key_spec,
            number_of_bytes,
            ..Default::default()
        })
        .collect();
    let out = kms.generate_data_key_batch(&reqs, true);
    assert_eq!(out.len(), reqs.len());
    for (req, r) in reqs.iter().zip(out) {
        match kms.generate_data_key(req) {
            Ok(single) => assert_eq!(
                r.unwrap().plaintext.unwrap().len(),
                single.plaintext.unwrap().len()
            ),
            Err(e) => {
                let got = assert_aws(r.map(|_| ()), ErrorKind::ValidationException);
                assert_eq!((e.kind(), got.message()), (got.kind(), e.message()));
            }
        }
    }
}

/// `batch` answers as `single` does: both succeed, or both refuse with the same kind,
/// `expected`, and the same message.
fn assert_answers_alike<T, U>(
    what: &str,
    single: kmscks::Result<T>,
    batch: kmscks::Result<U>,
    expected: Option<ErrorKind>,
) {
    match (single, batch, expected) {
        (Ok(_), Ok(_), None) => {}
        (Err(s), Err(b), Some(kind)) => {
            assert_eq!(s.kind(), kind, "{what}: the single call");
            assert_eq!((b.kind(), b.message()), (s.kind(), s.message()), "{what}");
        }
        (s, b, _) => panic!(
            "{what}: single {:?}, batch {:?}, expected {expected:?}",
            s.err(),
            b.err()
        ),
    }
}

#[test]
fn a_batch_item_of_a_refused_plaintext_or_blob_answers_as_a_single_call_does() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let plaintexts = [
        (vec![1u8; 16], None),
        (vec![], Some(ErrorKind::ValidationException)),
        (vec![2u8; 4097], Some(ErrorKind::ValidationException)),
        (vec![3u8; 4096], None),
    ];
    let reqs: Vec<EncryptRequest> = plaintexts
        .iter()
        .map(|(p, _)| EncryptRequest {
            key_id: key.clone(),
            plaintext: SecretBytes::from_slice(p),
            ..Default::default()
        })
        .collect();
    let out = kms.encrypt_batch(&reqs);
    assert_eq!(out.len(), reqs.len());
    for ((req, (p, expected)), r) in reqs.iter().zip(&plaintexts).zip(&out) {
        let what = format!("Encrypt of {} bytes", p.len());
        assert_answers_alike(&what, kms.encrypt(req), r.clone(), *expected);
    }

    let blob = out[0].as_ref().unwrap().ciphertext_blob.clone();
    let blobs = [
        (blob.clone(), None),
        (vec![], Some(ErrorKind::ValidationException)),
        (vec![7u8; 64], Some(ErrorKind::InvalidCiphertextException)),
        (
            blob[..blob.len() - 1].to_vec(),
            Some(ErrorKind::InvalidCiphertextException),
        ),
        (vec![7u8; 6145], Some(ErrorKind::ValidationException)),
        (blob, None),
    ];
    let reqs: Vec<DecryptRequest> = blobs
        .iter()
        .map(|(b, _)| DecryptRequest {
            ciphertext_blob: b.clone(),
            ..Default::default()
        })
        .collect();
    let out = kms.decrypt_batch(&reqs);
    assert_eq!(out.len(), reqs.len());
    for (i, ((req, (_, expected)), r)) in reqs.iter().zip(&blobs).zip(out).enumerate() {
        let what = format!("Decrypt of blob {i}");
        if let Ok(p) = &r {
            assert_eq!(p.plaintext.expose(), &[1u8; 16][..], "{what}");
        }
        assert_answers_alike(&what, kms.decrypt(req), r, *expected);
    }
}

#[test]
fn a_batch_item_asking_for_a_dry_run_answers_as_a_single_call_does() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let reqs: Vec<EncryptRequest> = [false, true, false]
        .into_iter()
        .map(|dry_run| EncryptRequest {
            key_id: key.clone(),
            plaintext: SecretBytes::from_slice(b"x"),
            dry_run,
            ..Default::default()
        })
        .collect();
    let single = kms.encrypt(&reqs[1]).map(|_| ());
    assert_aws(single, ErrorKind::DryRunOperationException);
    let out = kms.encrypt_batch(&reqs);
    assert!(out[0].is_ok() && out[2].is_ok());
    assert_aws(
        out[1].clone().map(|_| ()),
        ErrorKind::DryRunOperationException,
    );
    let gdk = GenerateDataKeyRequest {
        key_id: key.clone(),
        key_spec: Some(DataKeySpec::Aes256),
        dry_run: true,
        ..Default::default()
    };
    let out = kms.generate_data_key_batch(&[gdk], false);
    assert_aws(
        out[0].as_ref().map(|_| ()).map_err(Clone::clone),
        ErrorKind::DryRunOperationException,
    );
}

#[test]
fn ciphertexts_decrypt_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, clock) = config();
    // Small enough that the state is compacted into snapshots along the way.
    config.compact_after_bytes = 2048;
    let (blobs, store_id) = {
        let kms = kmscks::Kms::open_with(dir.path(), config.clone()).unwrap();
        let f = connected_store(&kms, &clock, "restart");
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

#[test]
fn limits_and_parameter_rules() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    assert_aws(
        encrypt(&kms, &key, b"", ctx(&[])),
        ErrorKind::ValidationException,
    );
    assert_aws(
        encrypt(&kms, &key, &[0; 4097], ctx(&[])),
        ErrorKind::ValidationException,
    );
    encrypt(&kms, &key, &[0; 4096], ctx(&[])).unwrap();
    let gdk = |spec: Option<DataKeySpec>, n: Option<u32>| {
        kms.generate_data_key(&GenerateDataKeyRequest {
            key_id: key.clone(),
            key_spec: spec,
            number_of_bytes: n,
            ..Default::default()
        })
    };
    let e = assert_aws(gdk(None, None), ErrorKind::ValidationException);
    assert_eq!(
        e.message(),
        "Please specify either number of bytes or key spec."
    );
    assert_aws(
        gdk(Some(DataKeySpec::Aes256), Some(32)),
        ErrorKind::ValidationException,
    );
    assert_aws(gdk(None, Some(0)), ErrorKind::ValidationException);
    assert_aws(gdk(None, Some(1025)), ErrorKind::ValidationException);
    assert_eq!(
        gdk(None, Some(1024)).unwrap().plaintext.unwrap().len(),
        1024
    );
    assert_eq!(
        gdk(Some(DataKeySpec::Aes128), None)
            .unwrap()
            .plaintext
            .unwrap()
            .len(),
        16
    );
    for n in [None, Some(0), Some(1025)] {
        assert_aws(
            kms.generate_random(&GenerateRandomRequest {
                number_of_bytes: n,
                custom_key_store_id: None,
            }),
            ErrorKind::ValidationException,
        );
    }
    let a = kms
        .generate_random(&GenerateRandomRequest {
            number_of_bytes: Some(1024),
            custom_key_store_id: None,
        })
        .unwrap();
    let b = kms
        .generate_random(&GenerateRandomRequest {
            number_of_bytes: Some(1024),
            custom_key_store_id: None,
        })
        .unwrap();
    assert_ne!(a.plaintext.expose(), b.plaintext.expose());
    assert_aws(
        kms.generate_random(&GenerateRandomRequest {
            number_of_bytes: Some(8),
            custom_key_store_id: Some("cks-00000000000000000".into()),
        }),
        ErrorKind::CustomKeyStoreNotFoundException,
    );
    // Only SYMMETRIC_DEFAULT suits these keys.
    let r = kms.encrypt(&EncryptRequest {
        key_id: key.clone(),
        plaintext: SecretBytes::from_slice(b"x"),
        encryption_algorithm: Some(kmscks::types::EncryptionAlgorithm::RsaesOaepSha256),
        ..Default::default()
    });
    assert_aws(r, ErrorKind::InvalidKeyUsageException);
    // DryRun answers DryRunOperationException when the call would have succeeded.
    let r = kms.encrypt(&EncryptRequest {
        key_id: key.clone(),
        plaintext: SecretBytes::from_slice(b"x"),
        dry_run: true,
        ..Default::default()
    });
    assert_aws(r, ErrorKind::DryRunOperationException);
    let r = kms.encrypt(&EncryptRequest {
        key_id: "alias/none".into(),
        plaintext: SecretBytes::from_slice(b"x"),
        dry_run: true,
        ..Default::default()
    });
    assert_aws(r, ErrorKind::NotFoundException);
}

#[test]
fn contexts_key_checks_and_re_encrypt_across_stores() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "across");
    let store_key = create_key(&kms, Some(&f.store_id));
    let default_key = create_key(&kms, None);
    kms.create_alias(&AliasRequest {
        alias_name: "alias/target".into(),
        target_key_id: default_key.clone(),
    })
    .unwrap();
    let enc = encrypt(&kms, &store_key, b"move me", ctx(&[("b", "2"), ("a", "1")])).unwrap();
    // Member order never matters; content does.
    decrypt(&kms, &enc.ciphertext_blob, ctx(&[("a", "1"), ("b", "2")])).unwrap();
    for wrong in [
        ctx(&[]),
        ctx(&[("a", "1")]),
        ctx(&[("a", "1"), ("b", "2"), ("c", "3")]),
        ctx(&[("A", "1"), ("b", "2")]),
    ] {
        assert_aws(
            decrypt(&kms, &enc.ciphertext_blob, wrong),
            ErrorKind::InvalidCiphertextException,
        );
    }
    // Decrypt with the wrong KeyId.
    let r = kms.decrypt(&DecryptRequest {
        ciphertext_blob: enc.ciphertext_blob.clone(),
        encryption_context: ctx(&[("a", "1"), ("b", "2")]),
        key_id: Some(default_key.clone()),
        ..Default::default()
    });
    assert_aws(r, ErrorKind::IncorrectKeyException);
    // ReEncrypt from the store key to the default key (by alias), with a new context.
    let re = kms
        .re_encrypt(&ReEncryptRequest {
            ciphertext_blob: enc.ciphertext_blob.clone(),
            source_encryption_context: ctx(&[("a", "1"), ("b", "2")]),
            source_key_id: Some(store_key.clone()),
            destination_key_id: "alias/target".into(),
            destination_encryption_context: ctx(&[("new", "ctx")]),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(*re.source_key_id, *describe_key(&kms, &store_key).arn);
    assert_eq!(*re.key_id, *describe_key(&kms, &default_key).arn);
    let dec = decrypt(&kms, &re.ciphertext_blob, ctx(&[("new", "ctx")])).unwrap();
    assert_eq!(dec.plaintext.expose(), b"move me");
    let r = kms.re_encrypt(&ReEncryptRequest {
        ciphertext_blob: enc.ciphertext_blob.clone(),
        source_encryption_context: ctx(&[("a", "1"), ("b", "2")]),
        source_key_id: Some(default_key.clone()),
        destination_key_id: default_key.clone(),
        ..Default::default()
    });
    assert_aws(r, ErrorKind::IncorrectKeyException);
    // Every single-byte change of a blob is InvalidCiphertextException, whether the request
    // names the key or not (a changed key id names no key: damaged, not another key's).
    for i in 0..enc.ciphertext_blob.len() {
        let mut blob = enc.ciphertext_blob.clone();
        blob[i] ^= 0x01;
        let r = decrypt(&kms, &blob, ctx(&[("a", "1"), ("b", "2")]));
        assert_aws(r, ErrorKind::InvalidCiphertextException);
        let r = kms.decrypt(&DecryptRequest {
            ciphertext_blob: blob,
            encryption_context: ctx(&[("a", "1"), ("b", "2")]),
            key_id: Some(store_key.clone()),
            ..Default::default()
        });
        assert_aws(r, ErrorKind::InvalidCiphertextException);
    }
}

#[test]
fn key_states_and_faults_answer_the_spec_exceptions() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "states");
    let key = create_key(&kms, Some(&f.store_id));
    let enc = encrypt(&kms, &key, b"x", ctx(&[])).unwrap();
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    let e = assert_aws(
        encrypt(&kms, &key, b"x", ctx(&[])),
        ErrorKind::KMSInvalidStateException,
    );
    assert!(e.message().ends_with("is pending deletion."), "{e}");
    assert_aws(
        decrypt(&kms, &enc.ciphertext_blob, ctx(&[])),
        ErrorKind::KMSInvalidStateException,
    );
    kms.cancel_key_deletion(&key_req(&key)).unwrap();
    assert_aws(
        encrypt(&kms, &key, b"x", ctx(&[])),
        ErrorKind::DisabledException,
    );
    kms.enable_key(&key_req(&key)).unwrap();
    // The HSM key object deleted behind KMS's back: the key's state stays, its use fails.
    let handle = kms.list_key_objects(&f.cluster.cluster_id).unwrap()[0].key_reference;
    kms.inject_fault(&f.cluster.cluster_id, &Fault::KeyObjectDeleted { handle })
        .unwrap();
    assert_eq!(
        describe_key(&kms, &key).key_state,
        kmscks::types::KeyState::Enabled
    );
    assert_aws(
        decrypt(&kms, &enc.ciphertext_blob, ctx(&[])),
        ErrorKind::KMSInvalidStateException,
    );
    // Deleted at the end of a window: NotFound by id, InvalidCiphertext for its blobs.
    let other = create_key(&kms, None);
    let other_blob = encrypt(&kms, &other, b"y", ctx(&[]))
        .unwrap()
        .ciphertext_blob;
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: other.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    clock.advance_days(8);
    kms.run_scheduled_deletions().unwrap();
    assert_aws(
        encrypt(&kms, &other, b"x", ctx(&[])),
        ErrorKind::NotFoundException,
    );
    assert_aws(
        decrypt(&kms, &other_blob, ctx(&[])),
        ErrorKind::InvalidCiphertextException,
    );
}

#[test]
fn subkey_rollover_keeps_every_blob_decryptable() {
    let (mut config, _clock) = config();
    config.engine.subkey_max_uses = 4;
    let kms = kmscks::Kms::in_memory_with(config);
    let key = create_key(&kms, None);
    let blobs: Vec<(Vec<u8>, u8)> = (0..40u8)
        .map(|i| {
            (
                encrypt(&kms, &key, &[i; 8], ctx(&[]))
                    .unwrap()
                    .ciphertext_blob,
                i,
            )
        })
        .collect();
    // Blobs from different subkey epochs carry different salts (bytes 17..33).
    let salts: std::collections::HashSet<&[u8]> = blobs.iter().map(|(b, _)| &b[17..33]).collect();
    assert!(
        salts.len() >= 10,
        "only {} salts for 40 blobs at 4 uses per subkey",
        salts.len()
    );
    for (blob, i) in &blobs {
        assert_eq!(
            decrypt(&kms, blob, ctx(&[])).unwrap().plaintext.expose(),
            &[*i; 8]
        );
    }
}

#[test]
fn concurrent_calls_during_control_plane_churn_succeed_or_fail_cleanly() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "churn");
    let store_key = create_key(&kms, Some(&f.store_id));
    let default_key = create_key(&kms, None);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (kms, stop) = (kms.clone(), stop.clone());
            let key = if t % 2 == 0 {
                store_key.clone()
            } else {
                default_key.clone()
            };
            std::thread::spawn(move || {
                let (mut ok, mut failed) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let r = encrypt(&kms, &key, b"churn", ctx(&[("t", "x")]))
                        .and_then(|e| {
                            decrypt(&kms, &e.ciphertext_blob, ctx(&[("t", "x")]))
                                .map(|d| assert_eq!(d.plaintext.expose(), b"churn"))
                        })
                        .and_then(|()| {
                            kms.generate_data_key(&GenerateDataKeyRequest {
                                key_id: key.clone(),
                                number_of_bytes: Some(32),
                                ..Default::default()
                            })
                            .map(|_| ())
                        });
                    match r {
                        Ok(()) => ok += 1,
                        Err(e) => {
                            assert!(
                                matches!(
                                    e.kind(),
                                    ErrorKind::DisabledException
                                        | ErrorKind::KMSInvalidStateException
                                ),
                                "unexpected {e}"
                            );
                            failed += 1;
                        }
                    }
                }
                (ok, failed)
            })
        })
        .collect();
    let zone = f.cluster.zones[0].clone();
    for round in 0..15 {
        kms.disable_key(&key_req(&store_key)).unwrap();
        kms.disable_key(&key_req(&default_key)).unwrap();
        kms.enable_key(&key_req(&store_key)).unwrap();
        kms.enable_key(&key_req(&default_key)).unwrap();
        disconnect(&kms, &clock, &f.store_id);
        connect(&kms, &clock, &f.store_id);
        // Replace an HSM: the key's replicas move with the cluster.
        let cluster = kms
            .describe_clusters(&Default::default())
            .unwrap()
            .clusters
            .remove(0);
        let victim = cluster.hsms[round % cluster.hsms.len()].hsm_id.to_string();
        kms.delete_hsm(&kmscks::api::hsm::DeleteHsmRequest {
            cluster_id: f.cluster.cluster_id.clone(),
            hsm_id: victim,
            ..Default::default()
        })
        .unwrap();
        kms.create_hsm(&kmscks::api::hsm::CreateHsmRequest {
            cluster_id: f.cluster.cluster_id.clone(),
            availability_zone: zone.clone(),
            region: None,
        })
        .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for w in workers {
        let (o, f) = w.join().expect("a worker thread panicked");
        ok += o;
        failed += f;
    }
    assert!(ok > 0, "no call succeeded ({failed} failed)");
    // After the churn the keys work again.
    encrypt(&kms, &store_key, b"after", ctx(&[])).unwrap();
    encrypt(&kms, &default_key, b"after", ctx(&[])).unwrap();
}
