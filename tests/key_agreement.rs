//! ECC keys for KEY_AGREEMENT in the default key store: CreateKey with the NIST curves,
//! DescribeKey's and GetPublicKey's `KeyAgreementAlgorithms`, DeriveSharedSecret (ECDH) with
//! the peer's DER SubjectPublicKeyInfo, each exception AWS answers, DryRun both ways, key
//! states and grants. The shared secret is checked by an independent implementation: the
//! `openssl` command line derives it from a local key and GetPublicKey's DER (the check skips,
//! saying so, without openssl).

mod common;

use std::process::Command;

use common::*;
use kmscks::api::kms::*;
use kmscks::types::{KeyAgreementAlgorithm, KeySpec, KeyUsage, Origin};
use kmscks::{ErrorKind, Kms};

const USER: &str = "arn:aws:iam::111122223333:user/uid-1001";
const ECDH: Option<KeyAgreementAlgorithm> = Some(KeyAgreementAlgorithm::Ecdh);

fn create_agreement_key(kms: &Kms, spec: KeySpec) -> KeyMetadata {
    kms.create_key(&CreateKeyRequest {
        key_spec: Some(spec),
        key_usage: Some(KeyUsage::KeyAgreement),
        ..Default::default()
    })
    .unwrap()
    .key_metadata
}

fn derive_req(key_id: &str, public_key: &[u8]) -> DeriveSharedSecretRequest {
    DeriveSharedSecretRequest {
        key_id: key_id.into(),
        key_agreement_algorithm: ECDH,
        public_key: public_key.to_vec(),
        ..Default::default()
    }
}

fn public_key(kms: &Kms, key_id: &str) -> Vec<u8> {
    kms.get_public_key(&key_req(key_id)).unwrap().public_key
}

#[test]
fn two_agreement_keys_of_each_nist_curve_derive_the_same_secret_from_each_others_public_key() {
    let (kms, _clock) = kms();
    for (spec, len) in [
        (KeySpec::EccNistP256, 32),
        (KeySpec::EccNistP384, 48),
        (KeySpec::EccNistP521, 66),
    ] {
        let a = create_agreement_key(&kms, spec);
        assert_eq!(a.key_usage, KeyUsage::KeyAgreement);
        assert_eq!(
            a.key_agreement_algorithms,
            vec![KeyAgreementAlgorithm::Ecdh]
        );
        assert!(a.signing_algorithms.is_empty() && a.encryption_algorithms.is_empty());
        let described = kms.describe_key(&key_req(&a.key_id)).unwrap().key_metadata;
        assert_eq!(
            described.key_agreement_algorithms,
            vec![KeyAgreementAlgorithm::Ecdh]
        );
        let b = create_agreement_key(&kms, spec).key_id;
        let public = kms.get_public_key(&key_req(&a.key_id)).unwrap();
        assert_eq!(
            (public.key_spec, public.key_usage),
            (spec, KeyUsage::KeyAgreement)
        );
        assert_eq!(
            public.key_agreement_algorithms,
            vec![KeyAgreementAlgorithm::Ecdh]
        );
        assert!(public.signing_algorithms.is_empty() && public.encryption_algorithms.is_empty());
        let ab = kms
            .derive_shared_secret(&derive_req(&a.key_id, &public_key(&kms, &b)))
            .unwrap();
        let ba = kms
            .derive_shared_secret(&derive_req(&b, &public.public_key))
            .unwrap();
        assert_eq!(ab.shared_secret.expose(), ba.shared_secret.expose());
        assert_eq!(ab.shared_secret.len(), len);
        assert_eq!(ab.key_agreement_algorithm, KeyAgreementAlgorithm::Ecdh);
        assert_eq!(ab.key_origin, Origin::AwsKms);
        assert_eq!(&*ab.key_id, a.arn.as_str());
    }
}

#[test]
fn create_key_makes_key_agreement_keys_of_the_nist_curves_only() {
    let (kms, _clock) = kms();
    for spec in [KeySpec::EccSecgP256k1, KeySpec::Rsa2048, KeySpec::Hmac256] {
        let r = kms.create_key(&CreateKeyRequest {
            key_spec: Some(spec),
            key_usage: Some(KeyUsage::KeyAgreement),
            ..Default::default()
        });
        assert_aws(r, ErrorKind::ValidationException);
    }
    // The same spec makes a signing key, which DeriveSharedSecret refuses.
    let signing = create_key_of(&kms, KeySpec::EccNistP256, KeyUsage::SignVerify);
    let peer = public_key(
        &kms,
        &create_agreement_key(&kms, KeySpec::EccNistP256).key_id,
    );
    assert_aws(
        kms.derive_shared_secret(&derive_req(&signing, &peer)),
        ErrorKind::InvalidKeyUsageException,
    );
}

#[test]
fn each_aws_exception_of_derive_shared_secret_is_answered() {
    let (kms, _clock) = kms();
    let key = create_agreement_key(&kms, KeySpec::EccNistP256).key_id;
    let peer = public_key(
        &kms,
        &create_agreement_key(&kms, KeySpec::EccNistP256).key_id,
    );
    let other_curve = public_key(
        &kms,
        &create_agreement_key(&kms, KeySpec::EccNistP384).key_id,
    );
    let symmetric = kms
        .create_key(&CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .key_id;
    let hmac = create_key_of(&kms, KeySpec::Hmac256, KeyUsage::GenerateVerifyMac);
    // Keys of another usage.
    for k in [&symmetric, &hmac] {
        assert_aws(
            kms.derive_shared_secret(&derive_req(k, &peer)),
            ErrorKind::InvalidKeyUsageException,
        );
    }
    // A public key of another curve, garbage, a bare EC point, none, too long.
    let point = peer[peer.len() - 65..].to_vec();
    for bad in [
        other_curve,
        b"garbage".to_vec(),
        point,
        vec![],
        vec![0x30; 8193],
    ] {
        assert_aws(
            kms.derive_shared_secret(&derive_req(&key, &bad)),
            ErrorKind::ValidationException,
        );
    }
    // The algorithm is required.
    assert_aws(
        kms.derive_shared_secret(&DeriveSharedSecretRequest {
            key_agreement_algorithm: None,
            ..derive_req(&key, &peer)
        }),
        ErrorKind::ValidationException,
    );
    assert_aws(
        kms.derive_shared_secret(&derive_req("alias/none", &peer)),
        ErrorKind::NotFoundException,
    );
    // Agreement keys refuse the other operations.
    assert_aws(
        kms.encrypt(&EncryptRequest {
            key_id: key.clone(),
            plaintext: kmscks::secret::SecretBytes::from_slice(b"x"),
            ..Default::default()
        }),
        ErrorKind::InvalidKeyUsageException,
    );
    assert_aws(
        kms.sign(&SignRequest {
            key_id: key.clone(),
            message: kmscks::secret::SecretBytes::from_slice(b"x"),
            signing_algorithm: Some(kmscks::types::SigningAlgorithm::EcdsaSha256),
            ..Default::default()
        }),
        ErrorKind::InvalidKeyUsageException,
    );
}

#[test]
fn key_states_dry_run_and_grants_hold_for_derive_shared_secret() {
    let (kms, _clock) = kms();
    let key = create_agreement_key(&kms, KeySpec::EccNistP384).key_id;
    let peer = public_key(
        &kms,
        &create_agreement_key(&kms, KeySpec::EccNistP384).key_id,
    );
    let dry = DeriveSharedSecretRequest {
        dry_run: true,
        ..derive_req(&key, &peer)
    };
    assert_aws(
        kms.derive_shared_secret(&dry),
        ErrorKind::DryRunOperationException,
    );
    let dry_bad = DeriveSharedSecretRequest {
        dry_run: true,
        ..derive_req(&key, b"garbage")
    };
    assert_aws(
        kms.derive_shared_secret(&dry_bad),
        ErrorKind::ValidationException,
    );

    let user = kms.acting_as(USER);
    assert_aws(
        user.derive_shared_secret(&derive_req(&key, &peer)),
        ErrorKind::AccessDeniedException,
    );
    kms.create_grant(&CreateGrantRequest {
        key_id: key.clone(),
        grantee_principal: USER.into(),
        operations: vec![GrantOperation::DeriveSharedSecret],
        ..Default::default()
    })
    .unwrap();
    let by_user = user.derive_shared_secret(&derive_req(&key, &peer)).unwrap();
    let by_root = kms.derive_shared_secret(&derive_req(&key, &peer)).unwrap();
    assert_eq!(
        by_user.shared_secret.expose(),
        by_root.shared_secret.expose()
    );
    assert_aws(
        user.get_public_key(&key_req(&key)),
        ErrorKind::AccessDeniedException,
    );

    kms.disable_key(&key_req(&key)).unwrap();
    assert_aws(kms.derive_shared_secret(&dry), ErrorKind::DisabledException);
    kms.enable_key(&key_req(&key)).unwrap();
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    assert_aws(
        kms.derive_shared_secret(&derive_req(&key, &peer)),
        ErrorKind::KMSInvalidStateException,
    );
}

#[test]
fn an_agreement_key_keeps_its_key_pair_across_a_restart() {
    let (config, _clock) = config();
    let dir = tempfile::tempdir().unwrap();
    let (key, peer, secret) = {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        let key = create_agreement_key(&kms, KeySpec::EccNistP521).key_id;
        let peer = public_key(
            &kms,
            &create_agreement_key(&kms, KeySpec::EccNistP521).key_id,
        );
        let secret = kms
            .derive_shared_secret(&derive_req(&key, &peer))
            .unwrap()
            .shared_secret;
        (key, peer, secret)
    };
    let kms = Kms::open_with(dir.path(), config).unwrap();
    let again = kms.derive_shared_secret(&derive_req(&key, &peer)).unwrap();
    assert_eq!(again.shared_secret.expose(), secret.expose());
}

fn openssl(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new("openssl").args(args).output().unwrap()
}

#[test]
fn openssl_derives_from_a_local_key_and_get_public_key_the_secret_derive_shared_secret_answers() {
    if !openssl_present() {
        return;
    }
    let (kms, _clock) = kms();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).into_os_string();
    for (spec, curve) in [
        (KeySpec::EccNistP256, "P-256"),
        (KeySpec::EccNistP384, "P-384"),
        (KeySpec::EccNistP521, "P-521"),
    ] {
        let key = create_agreement_key(&kms, spec).key_id;
        std::fs::write(dir.path().join("kms.der"), public_key(&kms, &key)).unwrap();
        let s = |t: &str| std::ffi::OsString::from(t);
        let steps: [Vec<std::ffi::OsString>; 3] = [
            vec![
                s("genpkey"),
                s("-algorithm"),
                s("EC"),
                s("-pkeyopt"),
                s(&format!("ec_paramgen_curve:{curve}")),
                s("-out"),
                path("local.pem"),
            ],
            vec![
                s("pkey"),
                s("-in"),
                path("local.pem"),
                s("-pubout"),
                s("-outform"),
                s("DER"),
                s("-out"),
                path("local.der"),
            ],
            vec![
                s("pkeyutl"),
                s("-derive"),
                s("-inkey"),
                path("local.pem"),
                s("-peerkey"),
                path("kms.der"),
                s("-peerform"),
                s("DER"),
                s("-out"),
                path("secret.bin"),
            ],
        ];
        for step in &steps {
            let args: Vec<&std::ffi::OsStr> = step.iter().map(|a| a.as_os_str()).collect();
            let o = openssl(&args);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let local_public = std::fs::read(dir.path().join("local.der")).unwrap();
        let by_openssl = std::fs::read(dir.path().join("secret.bin")).unwrap();
        let by_kms = kms
            .derive_shared_secret(&derive_req(&key, &local_public))
            .unwrap();
        assert_eq!(by_kms.shared_secret.expose(), &by_openssl[..], "{spec}");
    }
}
