//! HMAC keys in the default key store: CreateKey with the HMAC key specs, GenerateMac and
//! VerifyMac with each exception AWS answers, DryRun both ways, grants, DescribeKey's
//! `MacAlgorithms`, and what HMAC keys refuse (custom key stores, rotation, the symmetric
//! operations).

mod common;

use common::*;
use kmscks::api::kms::*;
use kmscks::secret::SecretBytes;
use kmscks::types::{KeySpec, KeyUsage, MacAlgorithm};
use kmscks::{ErrorKind, Kms};

const USER: &str = "arn:aws:iam::111122223333:user/uid-1001";

const SPECS: [(KeySpec, MacAlgorithm, usize); 4] = [
    (KeySpec::Hmac224, MacAlgorithm::HmacSha224, 28),
    (KeySpec::Hmac256, MacAlgorithm::HmacSha256, 32),
    (KeySpec::Hmac384, MacAlgorithm::HmacSha384, 48),
    (KeySpec::Hmac512, MacAlgorithm::HmacSha512, 64),
];

fn create_hmac_key(kms: &Kms, spec: KeySpec) -> KeyMetadata {
    kms.create_key(&CreateKeyRequest {
        key_spec: Some(spec),
        key_usage: Some(KeyUsage::GenerateVerifyMac),
        ..Default::default()
    })
    .unwrap()
    .key_metadata
}

fn gen_req(key_id: &str, message: &[u8], alg: MacAlgorithm) -> GenerateMacRequest {
    GenerateMacRequest {
        key_id: key_id.into(),
        message: SecretBytes::from_slice(message),
        mac_algorithm: Some(alg),
        ..Default::default()
    }
}

fn verify_req(key_id: &str, message: &[u8], alg: MacAlgorithm, mac: &[u8]) -> VerifyMacRequest {
    VerifyMacRequest {
        key_id: key_id.into(),
        message: SecretBytes::from_slice(message),
        mac_algorithm: Some(alg),
        mac: mac.to_vec(),
        ..Default::default()
    }
}

fn mac(kms: &Kms, key_id: &str, message: &[u8], alg: MacAlgorithm) -> Vec<u8> {
    kms.generate_mac(&gen_req(key_id, message, alg))
        .unwrap()
        .mac
}

#[test]
fn each_hmac_spec_makes_a_key_that_describes_its_one_mac_algorithm_and_no_encryption_algorithm() {
    let (kms, _clock) = kms();
    for (spec, alg, _) in SPECS {
        let created = create_hmac_key(&kms, spec);
        let m = describe_key(&kms, &created.key_id);
        assert_eq!(m, created);
        assert_eq!(m.key_spec, spec);
        assert_eq!(m.customer_master_key_spec, spec);
        assert_eq!(m.key_usage, KeyUsage::GenerateVerifyMac);
        assert_eq!(m.mac_algorithms, [alg]);
        assert!(m.encryption_algorithms.is_empty());
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["MacAlgorithms"], serde_json::json!([alg.as_str()]));
        assert!(json.get("EncryptionAlgorithms").is_none(), "{json}");
    }
    let symmetric = describe_key(&kms, &create_key(&kms, None));
    assert!(symmetric.mac_algorithms.is_empty());
    let json = serde_json::to_value(&symmetric).unwrap();
    assert!(json.get("MacAlgorithms").is_none(), "{json}");
}

#[test]
fn an_hmac_key_spec_needs_key_usage_generate_verify_mac() {
    let (kms, _clock) = kms();
    for usage in [
        None,
        Some(KeyUsage::EncryptDecrypt),
        Some(KeyUsage::SignVerify),
    ] {
        let r = kms.create_key(&CreateKeyRequest {
            key_spec: Some(KeySpec::Hmac256),
            key_usage: usage,
            ..Default::default()
        });
        assert_aws(r, ErrorKind::ValidationException);
    }
    let r = kms.create_key(&CreateKeyRequest {
        key_usage: Some(KeyUsage::GenerateVerifyMac),
        ..Default::default()
    });
    assert_aws(r, ErrorKind::ValidationException);
}

#[test]
fn a_custom_key_store_refuses_hmac_keys_as_aws_does() {
    let (kms, clock) = kms();
    let store = connected_store(&kms, &clock, "store");
    let r = kms.create_key(&CreateKeyRequest {
        key_spec: Some(KeySpec::Hmac256),
        key_usage: Some(KeyUsage::GenerateVerifyMac),
        custom_key_store_id: Some(store.store_id.clone()),
        origin: Some(kmscks::types::Origin::AwsCloudhsm),
        ..Default::default()
    });
    assert_aws(r, ErrorKind::UnsupportedOperationException);
}

#[test]
fn generate_mac_returns_the_hmac_that_verify_mac_accepts_for_every_spec() {
    let (kms, _clock) = kms();
    for (spec, alg, len) in SPECS {
        let key = create_hmac_key(&kms, spec);
        let out = kms
            .generate_mac(&gen_req(&key.key_id, b"hello", alg))
            .unwrap();
        assert_eq!(out.mac.len(), len, "{spec}");
        assert_eq!(out.mac_algorithm, alg);
        assert_eq!(&*out.key_id, key.arn);
        // HMAC is deterministic: the same message gives the same MAC, another one another.
        assert_eq!(mac(&kms, &key.key_id, b"hello", alg), out.mac);
        assert_ne!(mac(&kms, &key.key_id, b"hellp", alg), out.mac);
        let v = kms
            .verify_mac(&verify_req(&key.key_id, b"hello", alg, &out.mac))
            .unwrap();
        assert!(v.mac_valid);
        assert_eq!(v.mac_algorithm, alg);
        assert_eq!(&*v.key_id, key.arn);
    }
}

#[test]
fn two_hmac_keys_of_one_spec_have_different_material() {
    let (kms, _clock) = kms();
    let a = create_hmac_key(&kms, KeySpec::Hmac256);
    let b = create_hmac_key(&kms, KeySpec::Hmac256);
    let alg = MacAlgorithm::HmacSha256;
    assert_ne!(
        mac(&kms, &a.key_id, b"m", alg),
        mac(&kms, &b.key_id, b"m", alg)
    );
}

#[test]
fn the_mac_operations_take_a_key_id_key_arn_alias_name_or_alias_arn() {
    let (kms, _clock) = kms();
    let key = create_hmac_key(&kms, KeySpec::Hmac384);
    kms.create_alias(&AliasRequest {
        alias_name: "alias/mac".into(),
        target_key_id: key.key_id.clone(),
    })
    .unwrap();
    let alg = MacAlgorithm::HmacSha384;
    let expected = mac(&kms, &key.key_id, b"m", alg);
    for by in [
        key.key_id.clone(),
        key.arn.clone(),
        "alias/mac".into(),
        kms.scope().alias_arn("alias/mac"),
    ] {
        assert_eq!(mac(&kms, &by, b"m", alg), expected, "{by}");
        kms.verify_mac(&verify_req(&by, b"m", alg, &expected))
            .unwrap();
    }
}

#[test]
fn verify_mac_answers_kms_invalid_mac_exception_when_the_mac_does_not_verify() {
    let (kms, _clock) = kms();
    let key = create_hmac_key(&kms, KeySpec::Hmac256);
    let alg = MacAlgorithm::HmacSha256;
    let good = mac(&kms, &key.key_id, b"message", alg);
    let mut flipped = good.clone();
    flipped[5] ^= 1;
    let other_key = create_hmac_key(&kms, KeySpec::Hmac256);
    let cases: [(&str, &[u8], Vec<u8>); 4] = [
        (&key.key_id, b"message", flipped),
        (&key.key_id, b"message", good[..31].to_vec()),
        (&key.key_id, b"messagf", good.clone()),
        (&other_key.key_id, b"message", good.clone()),
    ];
    for (key_id, message, m) in cases {
        assert_aws(
            kms.verify_mac(&verify_req(key_id, message, alg, &m)),
            ErrorKind::KMSInvalidMacException,
        );
    }
}

#[test]
fn a_mac_algorithm_other_than_the_keys_is_invalid_key_usage_and_none_is_a_validation_error() {
    let (kms, _clock) = kms();
    let key = create_hmac_key(&kms, KeySpec::Hmac256);
    let good = mac(&kms, &key.key_id, b"m", MacAlgorithm::HmacSha256);
    for alg in [
        MacAlgorithm::HmacSha224,
        MacAlgorithm::HmacSha384,
        MacAlgorithm::HmacSha512,
    ] {
        assert_aws(
            kms.generate_mac(&gen_req(&key.key_id, b"m", alg)),
            ErrorKind::InvalidKeyUsageException,
        );
        assert_aws(
            kms.verify_mac(&verify_req(&key.key_id, b"m", alg, &good)),
            ErrorKind::InvalidKeyUsageException,
        );
    }
    let mut no_alg = gen_req(&key.key_id, b"m", MacAlgorithm::HmacSha256);
    no_alg.mac_algorithm = None;
    assert_aws(kms.generate_mac(&no_alg), ErrorKind::ValidationException);
}

#[test]
fn messages_of_1_to_4096_bytes_and_macs_up_to_6144_bytes_are_accepted() {
    let (kms, _clock) = kms();
    let key = create_hmac_key(&kms, KeySpec::Hmac512);
    let alg = MacAlgorithm::HmacSha512;
    for len in [1, 4096] {
        let message = vec![7u8; len];
        let m = mac(&kms, &key.key_id, &message, alg);
        kms.verify_mac(&verify_req(&key.key_id, &message, alg, &m))
            .unwrap();
    }
    for len in [0, 4097] {
        let message = vec![7u8; len];
        assert_aws(
            kms.generate_mac(&gen_req(&key.key_id, &message, alg)),
            ErrorKind::ValidationException,
        );
        assert_aws(
            kms.verify_mac(&verify_req(&key.key_id, &message, alg, &[0; 64])),
            ErrorKind::ValidationException,
        );
    }
    assert_aws(
        kms.verify_mac(&verify_req(&key.key_id, b"m", alg, &[])),
        ErrorKind::ValidationException,
    );
    assert_aws(
        kms.verify_mac(&verify_req(&key.key_id, b"m", alg, &vec![0; 6145])),
        ErrorKind::ValidationException,
    );
    assert_aws(
        kms.verify_mac(&verify_req(&key.key_id, b"m", alg, &vec![0; 6144])),
        ErrorKind::KMSInvalidMacException,
    );
}

#[test]
fn symmetric_keys_refuse_the_mac_operations_and_hmac_keys_the_symmetric_ones() {
    let (kms, _clock) = kms();
    let symmetric = create_key(&kms, None);
    let alg = MacAlgorithm::HmacSha256;
    assert_aws(
        kms.generate_mac(&gen_req(&symmetric, b"m", alg)),
        ErrorKind::InvalidKeyUsageException,
    );
    assert_aws(
        kms.verify_mac(&verify_req(&symmetric, b"m", alg, &[0; 32])),
        ErrorKind::InvalidKeyUsageException,
    );
    let hmac = create_hmac_key(&kms, KeySpec::Hmac256).key_id;
    let e = assert_aws(
        kms.encrypt(&EncryptRequest {
            key_id: hmac.clone(),
            plaintext: SecretBytes::from_slice(b"x"),
            ..Default::default()
        }),
        ErrorKind::InvalidKeyUsageException,
    );
    assert!(e.message().contains("GENERATE_VERIFY_MAC"), "{e}");
    assert_aws(
        kms.generate_data_key(&GenerateDataKeyRequest {
            key_id: hmac.clone(),
            number_of_bytes: Some(32),
            ..Default::default()
        }),
        ErrorKind::InvalidKeyUsageException,
    );
}

#[test]
fn a_disabled_unknown_or_deleted_key_answers_its_exception() {
    let (kms, _clock) = kms();
    let key = create_hmac_key(&kms, KeySpec::Hmac256).key_id;
    let alg = MacAlgorithm::HmacSha256;
    let good = mac(&kms, &key, b"m", alg);
    kms.disable_key(&key_req(&key)).unwrap();
    assert_aws(
        kms.generate_mac(&gen_req(&key, b"m", alg)),
        ErrorKind::DisabledException,
    );
    assert_aws(
        kms.verify_mac(&verify_req(&key, b"m", alg, &good)),
        ErrorKind::DisabledException,
    );
    kms.enable_key(&key_req(&key)).unwrap();
    assert_eq!(mac(&kms, &key, b"m", alg), good);
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    assert_aws(
        kms.generate_mac(&gen_req(&key, b"m", alg)),
        ErrorKind::KMSInvalidStateException,
    );
    assert_aws(
        kms.generate_mac(&gen_req(
            &kmscks::types::KeyId::generate().to_string(),
            b"m",
            alg,
        )),
        ErrorKind::NotFoundException,
    );
    assert_aws(
        kms.generate_mac(&gen_req("alias/none", b"m", alg)),
        ErrorKind::NotFoundException,
    );
}

#[test]
fn dry_run_answers_dry_run_operation_exception_when_every_check_passes_and_the_failing_checks_exception_otherwise(
) {
    let (kms, _clock) = kms();
    let key = create_hmac_key(&kms, KeySpec::Hmac256).key_id;
    let alg = MacAlgorithm::HmacSha256;
    let good = mac(&kms, &key, b"m", alg);
    let mut g = gen_req(&key, b"m", alg);
    g.dry_run = true;
    let e = assert_aws(kms.generate_mac(&g), ErrorKind::DryRunOperationException);
    assert_eq!(e.kind().http_status(), 412);
    let mut v = verify_req(&key, b"m", alg, &good);
    v.dry_run = true;
    assert_aws(kms.verify_mac(&v), ErrorKind::DryRunOperationException);

    let mut bad = verify_req(&key, b"m", alg, &[1; 32]);
    bad.dry_run = true;
    assert_aws(kms.verify_mac(&bad), ErrorKind::KMSInvalidMacException);
    let mut wrong_alg = gen_req(&key, b"m", MacAlgorithm::HmacSha512);
    wrong_alg.dry_run = true;
    assert_aws(
        kms.generate_mac(&wrong_alg),
        ErrorKind::InvalidKeyUsageException,
    );
    kms.disable_key(&key_req(&key)).unwrap();
    assert_aws(kms.generate_mac(&g), ErrorKind::DisabledException);
    let mut denied = gen_req(&key, b"m", alg);
    denied.dry_run = true;
    assert_aws(
        kms.acting_as(USER).generate_mac(&denied),
        ErrorKind::AccessDeniedException,
    );
}

#[test]
fn a_grant_for_generate_mac_lets_its_grantee_generate_but_not_verify_until_revoked() {
    let (kms, _clock) = kms();
    let key = create_hmac_key(&kms, KeySpec::Hmac256).key_id;
    let alg = MacAlgorithm::HmacSha256;
    let good = mac(&kms, &key, b"m", alg);
    let user = kms.acting_as(USER);
    assert_aws(
        user.generate_mac(&gen_req(&key, b"m", alg)),
        ErrorKind::AccessDeniedException,
    );
    let granted = kms
        .create_grant(&CreateGrantRequest {
            key_id: key.clone(),
            grantee_principal: USER.into(),
            operations: vec![GrantOperation::GenerateMac],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        user.generate_mac(&gen_req(&key, b"m", alg)).unwrap().mac,
        good
    );
    assert_aws(
        user.verify_mac(&verify_req(&key, b"m", alg, &good)),
        ErrorKind::AccessDeniedException,
    );
    kms.create_grant(&CreateGrantRequest {
        key_id: key.clone(),
        grantee_principal: USER.into(),
        operations: vec![GrantOperation::VerifyMac],
        ..Default::default()
    })
    .unwrap();
    user.verify_mac(&verify_req(&key, b"m", alg, &good))
        .unwrap();
    kms.revoke_grant(&RevokeGrantRequest {
        key_id: key.clone(),
        grant_id: granted.grant_id,
        ..Default::default()
    })
    .unwrap();
    assert_aws(
        user.generate_mac(&gen_req(&key, b"m", alg)),
        ErrorKind::AccessDeniedException,
    );
}

#[test]
fn hmac_keys_refuse_every_rotation_operation_with_unsupported_operation_exception() {
    let (kms, _clock) = kms();
    let key = create_hmac_key(&kms, KeySpec::Hmac256).key_id;
    assert_aws(
        kms.enable_key_rotation(&EnableKeyRotationRequest {
            key_id: key.clone(),
            ..Default::default()
        }),
        ErrorKind::UnsupportedOperationException,
    );
    assert_aws(
        kms.rotate_key_on_demand(&key_req(&key)),
        ErrorKind::UnsupportedOperationException,
    );
    assert_aws(
        kms.get_key_rotation_status(&key_req(&key)),
        ErrorKind::UnsupportedOperationException,
    );
}

#[test]
fn an_hmac_key_keeps_its_material_across_a_restart() {
    let (config, _clock) = config();
    let dir = tempfile::tempdir().unwrap();
    let (key, before) = {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        let key = create_hmac_key(&kms, KeySpec::Hmac224).key_id;
        let m = mac(&kms, &key, b"durable", MacAlgorithm::HmacSha224);
        (key, m)
    };
    let kms = Kms::open_with(dir.path(), config).unwrap();
    assert_eq!(
        mac(&kms, &key, b"durable", MacAlgorithm::HmacSha224),
        before
    );
    assert_eq!(describe_key(&kms, &key).key_spec, KeySpec::Hmac224);
}

#[test]
fn a_request_never_shows_its_message_in_debug_output() {
    let req = gen_req("k", b"top secret message", MacAlgorithm::HmacSha256);
    assert!(!format!("{req:?}").contains("top secret"));
    let dbg = format!("{:?}", b"top secret message".to_vec());
    assert!(!format!("{req:?}").contains(&dbg));
}
