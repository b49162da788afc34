//! RSA keys for ENCRYPT_DECRYPT in the default key store: CreateKey, DescribeKey's and
//! GetPublicKey's `EncryptionAlgorithms`, Encrypt and Decrypt with RSAES_OAEP_SHA_1 and
//! RSAES_OAEP_SHA_256 over raw RSA ciphertexts, AWS's plaintext limits per key spec and
//! algorithm, ReEncrypt across symmetric and asymmetric keys, each exception AWS answers,
//! DryRun both ways, key states and grants, and the same over the daemon's socket. Ciphertexts
//! made by an independent implementation (the `openssl` command line, from GetPublicKey's
//! DER) decrypt in kmscks; the check skips, saying so, without openssl.

mod common;
mod daemon_support;
mod support;

use std::process::Command;

use common::*;
use daemon_support::TestDaemon;
use kmscks::api::kms::*;
use kmscks::ops::{Request, Response};
use kmscks::secret::SecretBytes;
use kmscks::types::{EncryptionAlgorithm, EncryptionContext, KeySpec, KeyUsage};
use kmscks::{ErrorKind, Kms};

const USER: &str = "arn:aws:iam::111122223333:user/uid-1001";
const SHA_1: EncryptionAlgorithm = EncryptionAlgorithm::RsaesOaepSha1;
const SHA_256: EncryptionAlgorithm = EncryptionAlgorithm::RsaesOaepSha256;

fn create_rsa_key(kms: &Kms, spec: KeySpec) -> KeyMetadata {
    kms.create_key(&CreateKeyRequest {
        key_spec: Some(spec),
        key_usage: Some(KeyUsage::EncryptDecrypt),
        ..Default::default()
    })
    .unwrap()
    .key_metadata
}

fn encrypt_req(key_id: &str, plaintext: &[u8], alg: Option<EncryptionAlgorithm>) -> EncryptRequest {
    EncryptRequest {
        key_id: key_id.into(),
        plaintext: SecretBytes::from_slice(plaintext),
        encryption_algorithm: alg,
        ..Default::default()
    }
}

fn decrypt_req(
    key_id: Option<&str>,
    ciphertext: &[u8],
    alg: Option<EncryptionAlgorithm>,
) -> DecryptRequest {
    DecryptRequest {
        key_id: key_id.map(Into::into),
        ciphertext_blob: ciphertext.to_vec(),
        encryption_algorithm: alg,
        ..Default::default()
    }
}

fn context() -> EncryptionContext {
    let mut ctx = EncryptionContext::new();
    ctx.insert("purpose".into(), "test".into());
    ctx
}

#[test]
fn each_rsa_spec_encrypts_and_decrypts_with_both_oaep_algorithms_and_lists_them() {
    let (kms, _clock) = kms();
    for (spec, modulus) in [
        (KeySpec::Rsa2048, 256),
        (KeySpec::Rsa3072, 384),
        (KeySpec::Rsa4096, 512),
    ] {
        let meta = create_rsa_key(&kms, spec);
        assert_eq!(meta.key_usage, KeyUsage::EncryptDecrypt);
        assert_eq!(meta.encryption_algorithms, vec![SHA_1, SHA_256]);
        assert!(meta.signing_algorithms.is_empty());
        let described = kms
            .describe_key(&key_req(&meta.key_id))
            .unwrap()
            .key_metadata;
        assert_eq!(described.encryption_algorithms, vec![SHA_1, SHA_256]);
        let public = kms.get_public_key(&key_req(&meta.key_id)).unwrap();
        assert_eq!(
            (public.key_spec, public.key_usage),
            (spec, KeyUsage::EncryptDecrypt)
        );
        assert_eq!(public.encryption_algorithms, vec![SHA_1, SHA_256]);
        assert!(public.signing_algorithms.is_empty());
        assert_eq!(public.public_key[0], 0x30, "DER SubjectPublicKeyInfo");
        for alg in [SHA_1, SHA_256] {
            let out = kms
                .encrypt(&encrypt_req(&meta.key_id, b"attack at dawn", Some(alg)))
                .unwrap();
            assert_eq!(out.ciphertext_blob.len(), modulus, "the raw RSA ciphertext");
            assert_eq!(out.encryption_algorithm, alg);
            assert_eq!(&*out.key_id, meta.arn.as_str());
            let plain = kms
                .decrypt(&decrypt_req(
                    Some(&meta.key_id),
                    &out.ciphertext_blob,
                    Some(alg),
                ))
                .unwrap();
            assert_eq!(plain.plaintext.expose(), b"attack at dawn");
            assert_eq!(plain.encryption_algorithm, alg);
            assert_eq!(&*plain.key_id, meta.arn.as_str());
        }
    }
}

#[test]
fn plaintexts_up_to_awss_limit_per_key_spec_and_algorithm_encrypt_and_longer_ones_are_validation_errors(
) {
    let (kms, _clock) = kms();
    for (spec, sha1_max, sha256_max) in [
        (KeySpec::Rsa2048, 214, 190),
        (KeySpec::Rsa3072, 342, 318),
        (KeySpec::Rsa4096, 470, 446),
    ] {
        let key = create_rsa_key(&kms, spec).key_id;
        for (alg, max) in [(SHA_1, sha1_max), (SHA_256, sha256_max)] {
            let c = kms
                .encrypt(&encrypt_req(&key, &vec![7; max], Some(alg)))
                .unwrap()
                .ciphertext_blob;
            let p = kms
                .decrypt(&decrypt_req(Some(&key), &c, Some(alg)))
                .unwrap();
            assert_eq!(p.plaintext.len(), max);
            let r = kms.encrypt(&encrypt_req(&key, &vec![7; max + 1], Some(alg)));
            assert_aws(r, ErrorKind::ValidationException);
        }
        assert_aws(
            kms.encrypt(&encrypt_req(&key, b"", Some(SHA_256))),
            ErrorKind::ValidationException,
        );
    }
}

#[test]
fn each_aws_exception_of_rsa_encryption_is_answered() {
    let (kms, _clock) = kms();
    let rsa = create_rsa_key(&kms, KeySpec::Rsa2048).key_id;
    let symmetric = kms
        .create_key(&CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let signing = create_key_of(&kms, KeySpec::Rsa2048, KeyUsage::SignVerify);
    // The symmetric algorithm (named or left out) on an RSA key, and an algorithm the key
    // does not pair with.
    for alg in [
        None,
        Some(EncryptionAlgorithm::SymmetricDefault),
        Some(EncryptionAlgorithm::Sm2Pke),
    ] {
        assert_aws(
            kms.encrypt(&encrypt_req(&rsa, b"x", alg)),
            ErrorKind::InvalidKeyUsageException,
        );
    }
    // An RSA algorithm on a symmetric key or on an RSA signing key.
    for key in [&symmetric, &signing] {
        assert_aws(
            kms.encrypt(&encrypt_req(key, b"x", Some(SHA_256))),
            ErrorKind::InvalidKeyUsageException,
        );
        assert_aws(
            kms.decrypt(&decrypt_req(Some(key), &[1; 256], Some(SHA_256))),
            ErrorKind::InvalidKeyUsageException,
        );
    }
    // No encryption context with an asymmetric algorithm.
    let mut with_context = encrypt_req(&rsa, b"x", Some(SHA_256));
    with_context.encryption_context = context();
    assert_aws(kms.encrypt(&with_context), ErrorKind::ValidationException);
    let c = kms
        .encrypt(&encrypt_req(&rsa, b"x", Some(SHA_256)))
        .unwrap()
        .ciphertext_blob;
    let mut with_context = decrypt_req(Some(&rsa), &c, Some(SHA_256));
    with_context.encryption_context = context();
    assert_aws(kms.decrypt(&with_context), ErrorKind::ValidationException);
    // The raw ciphertext names no key: Decrypt needs KeyId.
    assert_aws(
        kms.decrypt(&decrypt_req(None, &c, Some(SHA_256))),
        ErrorKind::ValidationException,
    );
    // Tampered, under the other algorithm, or without an algorithm (the symmetric path finds
    // no blob): InvalidCiphertextException, with AWS's empty message for the RSA failures.
    let mut tampered = c.clone();
    tampered[17] ^= 1;
    let e = assert_aws(
        kms.decrypt(&decrypt_req(Some(&rsa), &tampered, Some(SHA_256))),
        ErrorKind::InvalidCiphertextException,
    );
    assert_eq!(e.message(), "");
    assert_aws(
        kms.decrypt(&decrypt_req(Some(&rsa), &c, Some(SHA_1))),
        ErrorKind::InvalidCiphertextException,
    );
    assert_aws(
        kms.decrypt(&decrypt_req(Some(&rsa), &c, None)),
        ErrorKind::InvalidCiphertextException,
    );
    // An RSA ciphertext is random bytes, and one in 256 begins with the version byte of the
    // engine's symmetric blobs: read by the symmetric path as a blob naming no key, it is
    // damaged too, not one encrypted under another key.
    let blob_version = kms
        .encrypt(&encrypt_req(&symmetric, b"x", None))
        .unwrap()
        .ciphertext_blob[0];
    let mut versioned = c.clone();
    versioned[0] = blob_version;
    assert_aws(
        kms.decrypt(&decrypt_req(Some(&rsa), &versioned, None)),
        ErrorKind::InvalidCiphertextException,
    );
    // The symmetric operations and the signing ones refuse the RSA encryption key.
    assert_aws(
        kms.generate_data_key(&GenerateDataKeyRequest {
            key_id: rsa.clone(),
            number_of_bytes: Some(32),
            ..Default::default()
        }),
        ErrorKind::InvalidKeyUsageException,
    );
    assert_aws(
        kms.sign(&SignRequest {
            key_id: rsa.clone(),
            message: SecretBytes::from_slice(b"m"),
            signing_algorithm: Some(kmscks::types::SigningAlgorithm::RsassaPssSha256),
            ..Default::default()
        }),
        ErrorKind::InvalidKeyUsageException,
    );
    assert_aws(
        kms.encrypt(&encrypt_req("alias/none", b"x", Some(SHA_256))),
        ErrorKind::NotFoundException,
    );
}

#[test]
fn re_encrypt_moves_data_between_symmetric_and_rsa_keys_in_every_direction() {
    let (kms, _clock) = kms();
    let rsa = create_rsa_key(&kms, KeySpec::Rsa2048).key_id;
    let rsa2 = create_rsa_key(&kms, KeySpec::Rsa3072).key_id;
    let symmetric = kms
        .create_key(&CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let blob = kms
        .encrypt(&EncryptRequest {
            encryption_context: context(),
            ..encrypt_req(&symmetric, b"payload", None)
        })
        .unwrap()
        .ciphertext_blob;
    // Symmetric to RSA.
    let to_rsa = kms
        .re_encrypt(&ReEncryptRequest {
            ciphertext_blob: blob,
            source_encryption_context: context(),
            destination_key_id: rsa.clone(),
            destination_encryption_algorithm: Some(SHA_256),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        to_rsa.source_encryption_algorithm,
        EncryptionAlgorithm::SymmetricDefault
    );
    assert_eq!(to_rsa.destination_encryption_algorithm, SHA_256);
    assert_eq!(to_rsa.ciphertext_blob.len(), 256);
    // RSA to RSA, then RSA to symmetric.
    let to_rsa2 = kms
        .re_encrypt(&ReEncryptRequest {
            ciphertext_blob: to_rsa.ciphertext_blob.clone(),
            source_key_id: Some(rsa.clone()),
            source_encryption_algorithm: Some(SHA_256),
            destination_key_id: rsa2.clone(),
            destination_encryption_algorithm: Some(SHA_1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(to_rsa2.ciphertext_blob.len(), 384);
    let back = kms
        .re_encrypt(&ReEncryptRequest {
            ciphertext_blob: to_rsa2.ciphertext_blob.clone(),
            source_key_id: Some(rsa2.clone()),
            source_encryption_algorithm: Some(SHA_1),
            destination_key_id: symmetric.clone(),
            ..Default::default()
        })
        .unwrap();
    let plain = kms
        .decrypt(&decrypt_req(None, &back.ciphertext_blob, None))
        .unwrap();
    assert_eq!(plain.plaintext.expose(), b"payload");
    // An RSA source needs SourceKeyId; no context on an RSA side.
    assert_aws(
        kms.re_encrypt(&ReEncryptRequest {
            ciphertext_blob: to_rsa.ciphertext_blob.clone(),
            source_encryption_algorithm: Some(SHA_256),
            destination_key_id: symmetric.clone(),
            ..Default::default()
        }),
        ErrorKind::ValidationException,
    );
    assert_aws(
        kms.re_encrypt(&ReEncryptRequest {
            ciphertext_blob: to_rsa.ciphertext_blob.clone(),
            source_key_id: Some(rsa.clone()),
            source_encryption_algorithm: Some(SHA_256),
            destination_key_id: rsa2.clone(),
            destination_encryption_algorithm: Some(SHA_256),
            destination_encryption_context: context(),
            ..Default::default()
        }),
        ErrorKind::ValidationException,
    );
    // A DryRun runs the whole of it and answers DryRunOperationException.
    assert_aws(
        kms.re_encrypt(&ReEncryptRequest {
            ciphertext_blob: to_rsa.ciphertext_blob,
            source_key_id: Some(rsa),
            source_encryption_algorithm: Some(SHA_256),
            destination_key_id: symmetric,
            dry_run: true,
            ..Default::default()
        }),
        ErrorKind::DryRunOperationException,
    );
}

#[test]
fn key_states_dry_run_and_grants_hold_for_rsa_encryption() {
    let (kms, _clock) = kms();
    let key = create_rsa_key(&kms, KeySpec::Rsa2048).key_id;
    let c = kms
        .encrypt(&encrypt_req(&key, b"m", Some(SHA_256)))
        .unwrap()
        .ciphertext_blob;
    // DryRun both ways.
    let dry = EncryptRequest {
        dry_run: true,
        ..encrypt_req(&key, b"m", Some(SHA_256))
    };
    assert_aws(kms.encrypt(&dry), ErrorKind::DryRunOperationException);
    let dry_too_long = EncryptRequest {
        dry_run: true,
        ..encrypt_req(&key, &[0; 191], Some(SHA_256))
    };
    assert_aws(kms.encrypt(&dry_too_long), ErrorKind::ValidationException);
    let dry_decrypt = DecryptRequest {
        dry_run: true,
        ..decrypt_req(Some(&key), &c, Some(SHA_256))
    };
    assert_aws(
        kms.decrypt(&dry_decrypt),
        ErrorKind::DryRunOperationException,
    );
    let dry_bad = DecryptRequest {
        dry_run: true,
        ..decrypt_req(Some(&key), &c[1..], Some(SHA_256))
    };
    assert_aws(kms.decrypt(&dry_bad), ErrorKind::InvalidCiphertextException);

    // Grants: Encrypt allows encrypting only.
    let user = kms.acting_as(USER);
    assert_aws(
        user.encrypt(&encrypt_req(&key, b"m", Some(SHA_256))),
        ErrorKind::AccessDeniedException,
    );
    kms.create_grant(&CreateGrantRequest {
        key_id: key.clone(),
        grantee_principal: USER.into(),
        operations: vec![GrantOperation::Encrypt, GrantOperation::GetPublicKey],
        ..Default::default()
    })
    .unwrap();
    let by_user = user
        .encrypt(&encrypt_req(&key, b"granted", Some(SHA_1)))
        .unwrap()
        .ciphertext_blob;
    user.get_public_key(&key_req(&key)).unwrap();
    assert_aws(
        user.decrypt(&decrypt_req(Some(&key), &by_user, Some(SHA_1))),
        ErrorKind::AccessDeniedException,
    );
    let plain = kms
        .decrypt(&decrypt_req(Some(&key), &by_user, Some(SHA_1)))
        .unwrap();
    assert_eq!(plain.plaintext.expose(), b"granted");

    // A disabled key refuses both, DryRun included.
    kms.disable_key(&key_req(&key)).unwrap();
    assert_aws(kms.encrypt(&dry), ErrorKind::DisabledException);
    assert_aws(
        kms.decrypt(&decrypt_req(Some(&key), &c, Some(SHA_256))),
        ErrorKind::DisabledException,
    );
}

#[test]
fn other_control_calls_go_on_while_an_rsa_4096_key_pair_is_generated() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let kms = Kms::in_memory();
    let done = AtomicBool::new(false);
    let (started_tx, started) = std::sync::mpsc::channel();
    let rsa = std::thread::scope(|s| {
        let rsa = s.spawn(|| {
            started_tx.send(()).unwrap();
            let key = create_rsa_key(&kms, KeySpec::Rsa4096);
            done.store(true, SeqCst);
            key
        });
        started.recv().unwrap();
        // The pair takes tens of ms to seconds of CPU; a symmetric CreateKey in memory, well
        // under one. Generated under the state's lock, it held every call until it was done.
        let mut answered_meanwhile = 0;
        while !done.load(SeqCst) && answered_meanwhile < 10 {
            kms.create_key(&CreateKeyRequest::default()).unwrap();
            if !done.load(SeqCst) {
                answered_meanwhile += 1;
            }
        }
        assert!(
            answered_meanwhile >= 10,
            "only {answered_meanwhile} CreateKey calls were answered while the pair was made"
        );
        rsa.join().unwrap()
    });
    // And the key made that way works.
    assert_eq!(describe_key(&kms, &rsa.key_id).key_spec, KeySpec::Rsa4096);
    let ct = kms
        .encrypt(&encrypt_req(&rsa.key_id, b"pair", Some(SHA_256)))
        .unwrap();
    let pt = kms
        .decrypt(&decrypt_req(
            Some(&rsa.key_id),
            &ct.ciphertext_blob,
            Some(SHA_256),
        ))
        .unwrap();
    assert_eq!(pt.plaintext.expose(), b"pair");
}

#[test]
fn an_rsa_encryption_key_keeps_its_key_pair_across_a_restart() {
    let (config, _clock) = config();
    let dir = tempfile::tempdir().unwrap();
    let (key, c) = {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        let key = create_rsa_key(&kms, KeySpec::Rsa2048).key_id;
        let c = kms
            .encrypt(&encrypt_req(&key, b"durable", Some(SHA_256)))
            .unwrap()
            .ciphertext_blob;
        (key, c)
    };
    let kms = Kms::open_with(dir.path(), config).unwrap();
    let p = kms
        .decrypt(&decrypt_req(Some(&key), &c, Some(SHA_256)))
        .unwrap();
    assert_eq!(p.plaintext.expose(), b"durable");
}

#[test]
fn over_the_socket_rsa_encryption_leaves_the_symmetric_batch_path_and_is_answered_alone() {
    let d = TestDaemon::start(|c| c.bootstrap = true);
    let mut c = d.connect();
    let key = expect!(
        c.call(&Request::CreateKey(CreateKeyRequest {
            key_spec: Some(KeySpec::Rsa2048),
            key_usage: Some(KeyUsage::EncryptDecrypt),
            ..Default::default()
        })),
        Response::CreateKey
    )
    .key_metadata
    .key_id;
    let symmetric = expect!(
        c.call(&Request::CreateKey(CreateKeyRequest::default())),
        Response::CreateKey
    )
    .key_metadata
    .key_id;
    // Pipelined: symmetric and RSA requests in one read, answered each in order.
    let ids = [
        c.send(&Request::Encrypt(encrypt_req(&symmetric, b"a", None))),
        c.send(&Request::Encrypt(encrypt_req(&key, b"b", Some(SHA_256)))),
        c.send(&Request::Encrypt(encrypt_req(&symmetric, b"c", None))),
    ];
    let mut blobs = Vec::new();
    for id in ids {
        let reply = c.recv().unwrap();
        assert_eq!(reply.header.request_id, id);
        blobs.push(expect!(reply.result, Response::Encrypt));
    }
    assert_eq!(blobs[1].encryption_algorithm, SHA_256);
    assert_eq!(blobs[1].ciphertext_blob.len(), 256);
    let plain = expect!(
        c.call(&Request::Decrypt(decrypt_req(
            Some(&key),
            &blobs[1].ciphertext_blob,
            Some(SHA_256)
        ))),
        Response::Decrypt
    );
    assert_eq!(plain.plaintext.expose(), b"b");
    let plain = expect!(
        c.call(&Request::Decrypt(decrypt_req(
            None,
            &blobs[2].ciphertext_blob,
            None
        ))),
        Response::Decrypt
    );
    assert_eq!(plain.plaintext.expose(), b"c");
    // An RSA decryption runs on the daemon's RSA lane, off the event loop; the requests
    // pipelined behind it wait for its answer, so the answers still come in order.
    let ids = [
        c.send(&Request::Decrypt(decrypt_req(
            Some(&key),
            &blobs[1].ciphertext_blob,
            Some(SHA_256),
        ))),
        c.send(&Request::Encrypt(encrypt_req(&symmetric, b"d", None))),
    ];
    let first = c.recv().unwrap();
    assert_eq!(first.header.request_id, ids[0]);
    assert_eq!(
        expect!(first.result, Response::Decrypt).plaintext.expose(),
        b"b"
    );
    let second = c.recv().unwrap();
    assert_eq!(second.header.request_id, ids[1]);
    expect!(second.result, Response::Encrypt);
}

#[test]
fn ciphertexts_openssl_makes_with_the_public_key_decrypt_in_kmscks() {
    if !openssl_present() {
        return;
    }
    let (kms, _clock) = kms();
    let key = create_rsa_key(&kms, KeySpec::Rsa3072).key_id;
    let public = kms.get_public_key(&key_req(&key)).unwrap().public_key;
    let dir = tempfile::tempdir().unwrap();
    let der = dir.path().join("pub.der");
    let msg = dir.path().join("msg.bin");
    let out = dir.path().join("out.bin");
    std::fs::write(&der, &public).unwrap();
    std::fs::write(&msg, b"sealed by openssl").unwrap();
    for (alg, md) in [(SHA_256, "sha256"), (SHA_1, "sha1")] {
        let o = Command::new("openssl")
            .args(["pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey"])
            .arg(&der)
            .arg("-in")
            .arg(&msg)
            .arg("-out")
            .arg(&out)
            .args(["-pkeyopt", "rsa_padding_mode:oaep"])
            .args(["-pkeyopt", &format!("rsa_oaep_md:{md}")])
            .args(["-pkeyopt", &format!("rsa_mgf1_md:{md}")])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let c = std::fs::read(&out).unwrap();
        let p = kms
            .decrypt(&decrypt_req(Some(&key), &c, Some(alg)))
            .unwrap();
        assert_eq!(p.plaintext.expose(), b"sealed by openssl");
    }
}
