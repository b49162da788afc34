//! Asymmetric signing keys in the default key store: CreateKey with the RSA and ECC specs
//! (SIGN_VERIFY), Sign and Verify with MessageType RAW and DIGEST and every algorithm AWS
//! pairs with each spec, GetPublicKey's DER SubjectPublicKeyInfo, each exception AWS answers,
//! DryRun both ways and grants. Signatures and public keys are checked by an independent
//! implementation, the `openssl` command line (the checks skip, saying so, without it).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use kmscks::api::kms::*;
use kmscks::secret::SecretBytes;
use kmscks::types::{KeySpec, KeyUsage, MessageType, SigningAlgorithm};
use kmscks::{ErrorKind, Kms};

const USER: &str = "arn:aws:iam::111122223333:user/uid-1001";

const SPECS: [KeySpec; 7] = [
    KeySpec::Rsa2048,
    KeySpec::Rsa3072,
    KeySpec::Rsa4096,
    KeySpec::EccNistP256,
    KeySpec::EccNistP384,
    KeySpec::EccNistP521,
    KeySpec::EccSecgP256k1,
];

fn create_signing_key(kms: &Kms, spec: KeySpec) -> KeyMetadata {
    kms.create_key(&CreateKeyRequest {
        key_spec: Some(spec),
        key_usage: Some(KeyUsage::SignVerify),
        ..Default::default()
    })
    .unwrap()
    .key_metadata
}

fn sign_req(key_id: &str, message: &[u8], alg: SigningAlgorithm) -> SignRequest {
    SignRequest {
        key_id: key_id.into(),
        message: SecretBytes::from_slice(message),
        signing_algorithm: Some(alg),
        ..Default::default()
    }
}

fn verify_req(key_id: &str, message: &[u8], alg: SigningAlgorithm, sig: &[u8]) -> VerifyRequest {
    VerifyRequest {
        key_id: key_id.into(),
        message: SecretBytes::from_slice(message),
        signing_algorithm: Some(alg),
        signature: sig.to_vec(),
        ..Default::default()
    }
}

fn sign(kms: &Kms, key_id: &str, message: &[u8], alg: SigningAlgorithm) -> Vec<u8> {
    kms.sign(&sign_req(key_id, message, alg)).unwrap().signature
}

fn digest_name(alg: SigningAlgorithm) -> &'static str {
    let name = alg.as_str();
    if name.ends_with("256") {
        "sha256"
    } else if name.ends_with("384") {
        "sha384"
    } else {
        "sha512"
    }
}

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl").args(args).output().unwrap()
}

/// The public key as openssl reads it (DER SPKI in, PEM out); asserts that it parses.
fn public_pem(dir: &Path, der: &[u8]) -> String {
    let der_path = dir.join("pub.der");
    let pem_path = dir.join("pub.pem");
    std::fs::write(&der_path, der).unwrap();
    let out = openssl(&[
        "pkey",
        "-pubin",
        "-inform",
        "DER",
        "-in",
        der_path.to_str().unwrap(),
        "-out",
        pem_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    pem_path.display().to_string()
}

/// Whether openssl verifies `sig` of `message` under the PEM public key with `alg`.
fn openssl_verifies(
    dir: &Path,
    pem: &str,
    alg: SigningAlgorithm,
    message: &[u8],
    sig: &[u8],
) -> bool {
    let msg = dir.join("msg.bin");
    let sig_path = dir.join("sig.bin");
    std::fs::write(&msg, message).unwrap();
    std::fs::write(&sig_path, sig).unwrap();
    let digest = format!("-{}", digest_name(alg));
    let mut args = vec!["dgst", &digest, "-verify", pem, "-signature"];
    let sig_s = sig_path.display().to_string();
    args.push(&sig_s);
    if alg.as_str().starts_with("RSASSA_PSS") {
        args.extend([
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:digest",
        ]);
    }
    let msg_s = msg.display().to_string();
    args.push(&msg_s);
    openssl(&args).status.success()
}

#[test]
fn each_signing_spec_signs_with_each_of_its_algorithms_and_openssl_verifies_with_the_public_key() {
    let (kms, _clock) = kms();
    let with_openssl = openssl_present();
    let dir = tempfile::tempdir().unwrap();
    for spec in SPECS {
        let meta = create_signing_key(&kms, spec);
        assert_eq!(describe_key(&kms, &meta.key_id), meta);
        assert_eq!(meta.key_usage, KeyUsage::SignVerify);
        assert_eq!(meta.signing_algorithms, spec.signing_algorithms());
        assert!(meta.encryption_algorithms.is_empty() && meta.mac_algorithms.is_empty());
        let public = kms.get_public_key(&key_req(&meta.key_id)).unwrap();
        assert_eq!(&*public.key_id, meta.arn);
        assert_eq!(public.key_spec, spec);
        assert_eq!(public.customer_master_key_spec, spec);
        assert_eq!(public.key_usage, KeyUsage::SignVerify);
        assert_eq!(public.signing_algorithms, spec.signing_algorithms());
        let pem = with_openssl.then(|| public_pem(dir.path(), &public.public_key));
        for &alg in spec.signing_algorithms() {
            let sig = sign(&kms, &meta.key_id, b"hello signed world", alg);
            let ok = kms
                .verify(&verify_req(&meta.key_id, b"hello signed world", alg, &sig))
                .unwrap();
            assert!(ok.signature_valid);
            assert_eq!(ok.signing_algorithm, alg);
            if let Some(pem) = &pem {
                assert!(
                    openssl_verifies(dir.path(), pem, alg, b"hello signed world", &sig),
                    "openssl refuses {spec} {alg}"
                );
                assert!(!openssl_verifies(
                    dir.path(),
                    pem,
                    alg,
                    b"hello signed worle",
                    &sig
                ));
            }
        }
    }
}

#[test]
fn a_digest_message_signs_what_the_raw_message_would() {
    let (kms, _clock) = kms();
    for (spec, alg, digest) in [
        (
            KeySpec::EccNistP256,
            SigningAlgorithm::EcdsaSha256,
            &aws_lc_rs::digest::SHA256,
        ),
        (
            KeySpec::Rsa2048,
            SigningAlgorithm::RsassaPssSha384,
            &aws_lc_rs::digest::SHA384,
        ),
    ] {
        let key = create_signing_key(&kms, spec).key_id;
        let d = aws_lc_rs::digest::digest(digest, b"message");
        let mut by_digest = sign_req(&key, d.as_ref(), alg);
        by_digest.message_type = Some(MessageType::Digest);
        let sig = kms.sign(&by_digest).unwrap().signature;
        kms.verify(&verify_req(&key, b"message", alg, &sig))
            .unwrap();
        let mut v = verify_req(&key, d.as_ref(), alg, &sig);
        v.message_type = Some(MessageType::Digest);
        kms.verify(&v).unwrap();
        // A digest of another length than the algorithm's is refused.
        let mut short = sign_req(&key, &d.as_ref()[1..], alg);
        short.message_type = Some(MessageType::Digest);
        assert_aws(kms.sign(&short), ErrorKind::ValidationException);
    }
}

#[test]
fn verify_answers_kms_invalid_signature_exception_when_the_signature_does_not_verify() {
    let (kms, _clock) = kms();
    let key = create_signing_key(&kms, KeySpec::EccNistP384).key_id;
    let alg = SigningAlgorithm::EcdsaSha384;
    let sig = sign(&kms, &key, b"m", alg);
    let mut flipped = sig.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let other = create_signing_key(&kms, KeySpec::EccNistP384).key_id;
    for (k, m, s) in [
        (&key, &b"n"[..], &sig),
        (&key, b"m", &flipped),
        (&other, b"m", &sig),
    ] {
        assert_aws(
            kms.verify(&verify_req(k, m, alg, s)),
            ErrorKind::KMSInvalidSignatureException,
        );
    }
}

#[test]
fn an_algorithm_the_key_does_not_pair_with_is_invalid_key_usage_and_none_a_validation_error() {
    let (kms, _clock) = kms();
    let ec = create_signing_key(&kms, KeySpec::EccNistP256).key_id;
    for alg in [
        SigningAlgorithm::EcdsaSha384,
        SigningAlgorithm::RsassaPssSha256,
    ] {
        assert_aws(
            kms.sign(&sign_req(&ec, b"m", alg)),
            ErrorKind::InvalidKeyUsageException,
        );
    }
    let mut none = sign_req(&ec, b"m", SigningAlgorithm::EcdsaSha256);
    none.signing_algorithm = None;
    assert_aws(kms.sign(&none), ErrorKind::ValidationException);
}

#[test]
fn the_ed25519_algorithms_are_invalid_key_usage_on_the_keys_kmscks_makes() {
    let (kms, _clock) = kms();
    for spec in [KeySpec::EccNistP256, KeySpec::Rsa2048] {
        let key = create_signing_key(&kms, spec).key_id;
        // A signature the key made, so that Verify's refusal is the algorithm's.
        let sig = sign(&kms, &key, b"m", spec.signing_algorithms()[0]);
        for ed in [
            SigningAlgorithm::Ed25519Sha512,
            SigningAlgorithm::Ed25519PhSha512,
        ] {
            let e = assert_aws(
                kms.sign(&sign_req(&key, b"m", ed)),
                ErrorKind::InvalidKeyUsageException,
            );
            assert!(e.message().contains(ed.as_str()), "{e}");
            assert_aws(
                kms.verify(&verify_req(&key, b"m", ed, &sig)),
                ErrorKind::InvalidKeyUsageException,
            );
        }
    }
}

#[test]
fn an_rsa_signing_key_lists_its_pkcs1_algorithms_then_its_pss_ones_as_aws_does() {
    let (kms, _clock) = kms();
    let meta = create_signing_key(&kms, KeySpec::Rsa2048);
    let public = kms.get_public_key(&key_req(&meta.key_id)).unwrap();
    // DescribeKey of an RSA signing key in AWS's developer guide.
    let aws = [
        "RSASSA_PKCS1_V1_5_SHA_256",
        "RSASSA_PKCS1_V1_5_SHA_384",
        "RSASSA_PKCS1_V1_5_SHA_512",
        "RSASSA_PSS_SHA_256",
        "RSASSA_PSS_SHA_384",
        "RSASSA_PSS_SHA_512",
    ];
    for listed in [&meta.signing_algorithms, &public.signing_algorithms] {
        let names: Vec<&str> = listed.iter().map(|a| a.as_str()).collect();
        assert_eq!(names, aws);
    }
}

#[test]
fn raw_messages_of_1_to_4096_bytes_are_signed_and_others_refused() {
    let (kms, _clock) = kms();
    let key = create_signing_key(&kms, KeySpec::EccNistP256).key_id;
    let alg = SigningAlgorithm::EcdsaSha256;
    for len in [1, 4096] {
        let sig = sign(&kms, &key, &vec![1; len], alg);
        kms.verify(&verify_req(&key, &vec![1; len], alg, &sig))
            .unwrap();
    }
    for len in [0, 4097] {
        assert_aws(
            kms.sign(&sign_req(&key, &vec![1; len], alg)),
            ErrorKind::ValidationException,
        );
    }
    assert_aws(
        kms.verify(&verify_req(&key, b"m", alg, &[])),
        ErrorKind::ValidationException,
    );
}

#[test]
fn signing_keys_refuse_the_symmetric_and_mac_operations_and_other_keys_refuse_signing() {
    let (kms, _clock) = kms();
    let signing = create_signing_key(&kms, KeySpec::EccNistP256).key_id;
    let e = assert_aws(
        kms.encrypt(&EncryptRequest {
            key_id: signing.clone(),
            plaintext: SecretBytes::from_slice(b"x"),
            ..Default::default()
        }),
        ErrorKind::InvalidKeyUsageException,
    );
    assert!(e.message().contains("SIGN_VERIFY"), "{e}");
    assert_aws(
        kms.generate_mac(&GenerateMacRequest {
            key_id: signing.clone(),
            message: SecretBytes::from_slice(b"x"),
            mac_algorithm: Some(kmscks::types::MacAlgorithm::HmacSha256),
            ..Default::default()
        }),
        ErrorKind::InvalidKeyUsageException,
    );
    let symmetric = create_key(&kms, None);
    let hmac = create_key_of(&kms, KeySpec::Hmac256, KeyUsage::GenerateVerifyMac);
    for k in [&symmetric, &hmac] {
        assert_aws(
            kms.sign(&sign_req(k, b"m", SigningAlgorithm::EcdsaSha256)),
            ErrorKind::InvalidKeyUsageException,
        );
        assert_aws(
            kms.get_public_key(&key_req(k)),
            ErrorKind::UnsupportedOperationException,
        );
    }
}

#[test]
fn create_key_refuses_a_usage_aws_does_not_pair_with_the_spec_and_a_custom_key_store_refuses_asymmetric_keys(
) {
    let (kms, clock) = kms();
    for usage in [None, Some(KeyUsage::GenerateVerifyMac)] {
        let r = kms.create_key(&CreateKeyRequest {
            key_spec: Some(KeySpec::EccNistP256),
            key_usage: usage,
            ..Default::default()
        });
        assert_aws(r, ErrorKind::ValidationException);
    }
    let r = kms.create_key(&CreateKeyRequest {
        key_spec: Some(KeySpec::EccSecgP256k1),
        key_usage: Some(KeyUsage::KeyAgreement),
        ..Default::default()
    });
    assert_aws(r, ErrorKind::ValidationException);
    let store = connected_store(&kms, &clock, "store");
    let r = kms.create_key(&CreateKeyRequest {
        key_spec: Some(KeySpec::Rsa2048),
        key_usage: Some(KeyUsage::SignVerify),
        custom_key_store_id: Some(store.store_id.clone()),
        origin: Some(kmscks::types::Origin::AwsCloudhsm),
        ..Default::default()
    });
    assert_aws(r, ErrorKind::UnsupportedOperationException);
}

#[test]
fn key_states_dry_run_and_grants_hold_for_sign_verify_and_get_public_key() {
    let (kms, _clock) = kms();
    let key = create_signing_key(&kms, KeySpec::EccNistP256).key_id;
    let alg = SigningAlgorithm::EcdsaSha256;
    let sig = sign(&kms, &key, b"m", alg);
    let mut dry = sign_req(&key, b"m", alg);
    dry.dry_run = true;
    assert_aws(kms.sign(&dry), ErrorKind::DryRunOperationException);
    let mut dry_verify = verify_req(&key, b"m", alg, &sig);
    dry_verify.dry_run = true;
    assert_aws(kms.verify(&dry_verify), ErrorKind::DryRunOperationException);
    let mut dry_bad = verify_req(&key, b"n", alg, &sig);
    dry_bad.dry_run = true;
    assert_aws(
        kms.verify(&dry_bad),
        ErrorKind::KMSInvalidSignatureException,
    );

    let user = kms.acting_as(USER);
    assert_aws(
        user.sign(&sign_req(&key, b"m", alg)),
        ErrorKind::AccessDeniedException,
    );
    assert_aws(
        user.get_public_key(&key_req(&key)),
        ErrorKind::AccessDeniedException,
    );
    kms.create_grant(&CreateGrantRequest {
        key_id: key.clone(),
        grantee_principal: USER.into(),
        operations: vec![GrantOperation::Sign, GrantOperation::GetPublicKey],
        ..Default::default()
    })
    .unwrap();
    let by_user = user.sign(&sign_req(&key, b"m", alg)).unwrap().signature;
    kms.verify(&verify_req(&key, b"m", alg, &by_user)).unwrap();
    user.get_public_key(&key_req(&key)).unwrap();
    assert_aws(
        user.verify(&verify_req(&key, b"m", alg, &sig)),
        ErrorKind::AccessDeniedException,
    );

    kms.disable_key(&key_req(&key)).unwrap();
    assert_aws(kms.sign(&dry), ErrorKind::DisabledException);
    assert_aws(
        kms.get_public_key(&key_req(&key)),
        ErrorKind::DisabledException,
    );
    assert_aws(
        kms.enable_key_rotation(&EnableKeyRotationRequest {
            key_id: key.clone(),
            ..Default::default()
        }),
        ErrorKind::UnsupportedOperationException,
    );
}

#[test]
fn a_signing_key_keeps_its_key_pair_across_a_restart() {
    let (config, _clock) = config();
    let dir = tempfile::tempdir().unwrap();
    let (key, public, sig) = {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        let key = create_signing_key(&kms, KeySpec::EccSecgP256k1).key_id;
        let public = kms.get_public_key(&key_req(&key)).unwrap().public_key;
        let sig = sign(&kms, &key, b"durable", SigningAlgorithm::EcdsaSha256);
        (key, public, sig)
    };
    let kms = Kms::open_with(dir.path(), config).unwrap();
    assert_eq!(
        kms.get_public_key(&key_req(&key)).unwrap().public_key,
        public
    );
    kms.verify(&verify_req(
        &key,
        b"durable",
        SigningAlgorithm::EcdsaSha256,
        &sig,
    ))
    .unwrap();
}
