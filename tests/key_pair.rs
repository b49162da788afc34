//! Data key pairs: GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext with every
//! KeyPairSpec kmscks makes, the private key sealed under a symmetric key of the default key
//! store (a blob Decrypt opens, bound to the encryption context), each exception AWS answers,
//! DryRun both ways and grants. That each private key matches its public key is checked by an
//! independent implementation, the `openssl` command line (skipped, saying so, without it).

mod common;
mod support;

use std::path::Path;
use std::process::Command;

use common::*;
use kmscks::api::kms::*;
use kmscks::types::{DataKeyPairSpec, EncryptionContext, KeySpec, KeyUsage, MacAlgorithm};
use kmscks::{ErrorKind, Kms};

const USER: &str = "arn:aws:iam::111122223333:user/uid-1001";

fn pair_req(key_id: &str, spec: DataKeyPairSpec) -> GenerateDataKeyPairRequest {
    GenerateDataKeyPairRequest {
        key_id: key_id.into(),
        key_pair_spec: Some(spec),
        ..Default::default()
    }
}

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn decrypt(kms: &Kms, blob: &[u8], context: EncryptionContext) -> kmscks::Result<Vec<u8>> {
    kms.decrypt(&DecryptRequest {
        ciphertext_blob: blob.to_vec(),
        encryption_context: context,
        ..Default::default()
    })
    .map(|r| r.plaintext.expose().to_vec())
}

/// The DER SubjectPublicKeyInfo openssl derives from a PKCS#8 DER private key.
fn openssl_public_of(dir: &Path, pkcs8: &[u8]) -> Vec<u8> {
    let private = dir.join("private.der");
    let public = dir.join("public.der");
    std::fs::write(&private, pkcs8).unwrap();
    let out = Command::new("openssl")
        .args(["pkey", "-inform", "DER", "-in"])
        .arg(&private)
        .args(["-pubout", "-outform", "DER", "-out"])
        .arg(&public)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl pkey: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&public).unwrap()
}

/// The key type openssl reads from a DER SubjectPublicKeyInfo (`openssl pkey -text`'s first
/// line, e.g. `Public-Key: (256 bit)` or `ED25519 Public-Key:`), asserting that it parses.
fn openssl_describes_public(dir: &Path, spki: &[u8]) -> String {
    let public = dir.join("spki.der");
    std::fs::write(&public, spki).unwrap();
    let out = Command::new("openssl")
        .args(["pkey", "-pubin", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&public)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl pkey -pubin: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What openssl's text of each spec's public key says, to tell the specs apart.
fn openssl_names(spec: DataKeyPairSpec) -> &'static str {
    use DataKeyPairSpec::*;
    match spec {
        Rsa2048 => "(2048 bit)",
        Rsa3072 => "(3072 bit)",
        Rsa4096 => "(4096 bit)",
        EccNistP256 => "P-256",
        EccNistP384 => "P-384",
        EccNistP521 => "P-521",
        EccSecgP256k1 => "secp256k1",
        EccNistEdwards25519 => "ED25519",
        Sm2 => unreachable!("kmscks makes no SM2 pairs"),
    }
}

fn supported_specs() -> impl Iterator<Item = DataKeyPairSpec> {
    DataKeyPairSpec::ALL
        .iter()
        .copied()
        .filter(|&s| s != DataKeyPairSpec::Sm2)
}

#[test]
fn each_spec_makes_a_pair_whose_sealed_private_key_decrypts_and_matches_its_public_key() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let arn = describe_key(&kms, &key).arn;
    let dir = tempfile::tempdir().unwrap();
    let openssl = openssl_present();
    let context = ctx(&[("purpose", "pairs")]);
    for spec in supported_specs() {
        let mut req = pair_req(&key, spec);
        req.encryption_context = context.clone();
        let r = kms.generate_data_key_pair(&req).unwrap();
        assert_eq!(r.key_pair_spec, spec);
        assert_eq!(&*r.key_id, arn.as_str());
        let private = r
            .private_key_plaintext
            .expect("GenerateDataKeyPair returns the private key");
        let opened = decrypt(&kms, &r.private_key_ciphertext_blob, context.clone()).unwrap();
        assert_eq!(
            opened,
            private.expose(),
            "{spec}: the blob seals the private key"
        );
        if openssl {
            assert_eq!(
                openssl_public_of(dir.path(), private.expose()),
                r.public_key,
                "{spec}: openssl derives the returned public key from the private key"
            );
            let text = openssl_describes_public(dir.path(), &r.public_key);
            assert!(text.contains(openssl_names(spec)), "{spec}: {text}");
        }
    }
}

#[test]
fn without_plaintext_returns_only_the_public_key_and_the_sealed_private_key() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let r = kms
        .generate_data_key_pair_without_plaintext(&pair_req(&key, DataKeyPairSpec::EccNistP384))
        .unwrap();
    assert!(r.private_key_plaintext.is_none());
    let private = decrypt(&kms, &r.private_key_ciphertext_blob, ctx(&[])).unwrap();
    if openssl_present() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(openssl_public_of(dir.path(), &private), r.public_key);
    }
    // In AWS's JSON the plaintext member is absent, not null.
    let json = serde_json::to_value(&r).unwrap();
    assert!(json.get("PrivateKeyPlaintext").is_none(), "{json}");
    for member in [
        "PrivateKeyCiphertextBlob",
        "PublicKey",
        "KeyId",
        "KeyPairSpec",
    ] {
        assert!(json.get(member).is_some(), "{member} in {json}");
    }
    assert_eq!(json["KeyPairSpec"], "ECC_NIST_P384");
}

#[test]
fn two_calls_make_two_different_pairs() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let a = kms
        .generate_data_key_pair(&pair_req(&key, DataKeyPairSpec::EccNistP256))
        .unwrap();
    let b = kms
        .generate_data_key_pair(&pair_req(&key, DataKeyPairSpec::EccNistP256))
        .unwrap();
    assert_ne!(a.public_key, b.public_key);
    assert_ne!(
        a.private_key_plaintext.unwrap().expose(),
        b.private_key_plaintext.unwrap().expose()
    );
}

#[test]
fn the_sealed_private_key_is_bound_to_its_encryption_context() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let mut req = pair_req(&key, DataKeyPairSpec::EccNistP256);
    req.encryption_context = ctx(&[("tenant", "a")]);
    let r = kms.generate_data_key_pair_without_plaintext(&req).unwrap();
    for wrong in [ctx(&[]), ctx(&[("tenant", "b")])] {
        assert_aws(
            decrypt(&kms, &r.private_key_ciphertext_blob, wrong),
            ErrorKind::InvalidCiphertextException,
        );
    }
    decrypt(
        &kms,
        &r.private_key_ciphertext_blob,
        ctx(&[("tenant", "a")]),
    )
    .unwrap();
}

#[test]
fn a_missing_key_pair_spec_is_a_validation_error_and_sm2_is_unsupported() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let e = kms
        .generate_data_key_pair(&GenerateDataKeyPairRequest {
            key_id: key.clone(),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ValidationException);
    assert!(e.message().contains("keyPairSpec"), "{e}");
    let e = kms
        .generate_data_key_pair(&pair_req(&key, DataKeyPairSpec::Sm2))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnsupportedOperationException);
    assert!(e.message().contains("SM2"), "{e}");
    // Checked before the key: a DryRun of SM2 is refused the same way.
    let mut dry = pair_req(&key, DataKeyPairSpec::Sm2);
    dry.dry_run = true;
    assert_aws(
        kms.generate_data_key_pair(&dry),
        ErrorKind::UnsupportedOperationException,
    );
}

#[test]
fn asymmetric_and_hmac_keys_refuse_as_invalid_key_usage_and_unknown_keys_are_not_found() {
    let (kms, _clock) = kms();
    let signing = create_key_of(&kms, KeySpec::EccNistP256, KeyUsage::SignVerify);
    let hmac = create_key_of(&kms, KeySpec::Hmac256, KeyUsage::GenerateVerifyMac);
    for key in [&signing, &hmac] {
        for spec in [DataKeyPairSpec::EccNistP256, DataKeyPairSpec::Rsa2048] {
            assert_aws(
                kms.generate_data_key_pair(&pair_req(key, spec)),
                ErrorKind::InvalidKeyUsageException,
            );
            assert_aws(
                kms.generate_data_key_pair_without_plaintext(&pair_req(key, spec)),
                ErrorKind::InvalidKeyUsageException,
            );
        }
    }
    // The HMAC key still works for what it is for.
    kms.generate_mac(&GenerateMacRequest {
        key_id: hmac,
        message: kmscks::secret::SecretBytes::from_slice(b"m"),
        mac_algorithm: Some(MacAlgorithm::HmacSha256),
        ..Default::default()
    })
    .unwrap();
    assert_aws(
        kms.generate_data_key_pair(&pair_req(
            "1234abcd-12ab-34cd-56ef-1234567890ab",
            DataKeyPairSpec::EccNistP256,
        )),
        ErrorKind::NotFoundException,
    );
    assert_aws(
        kms.generate_data_key_pair(&pair_req("alias/none", DataKeyPairSpec::EccNistP256)),
        ErrorKind::NotFoundException,
    );
}

#[test]
fn a_key_in_a_custom_key_store_refuses_as_unsupported_operation_naming_the_key() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "s1");
    let key = create_key(&kms, Some(&f.store_id));
    let arn = describe_key(&kms, &key).arn;
    alias(&kms, "alias/in-store", &key);
    for by in [key.as_str(), arn.as_str(), "alias/in-store"] {
        for spec in [DataKeyPairSpec::EccNistP256, DataKeyPairSpec::Rsa2048] {
            let e = kms.generate_data_key_pair(&pair_req(by, spec)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::UnsupportedOperationException, "{e}");
            assert!(e.message().contains(&arn), "{e}");
            let mut dry = pair_req(by, spec);
            dry.dry_run = true;
            assert_aws(
                kms.generate_data_key_pair_without_plaintext(&dry),
                ErrorKind::UnsupportedOperationException,
            );
        }
    }
}

fn alias(kms: &Kms, name: &str, key: &str) {
    kms.create_alias(&AliasRequest {
        alias_name: name.into(),
        target_key_id: key.into(),
    })
    .unwrap();
}

#[test]
fn dry_run_answers_dry_run_operation_when_every_check_passes_and_the_failing_checks_exception_otherwise(
) {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    for spec in [DataKeyPairSpec::Rsa4096, DataKeyPairSpec::EccNistP256] {
        let mut dry = pair_req(&key, spec);
        dry.dry_run = true;
        assert_aws(
            kms.generate_data_key_pair(&dry),
            ErrorKind::DryRunOperationException,
        );
        assert_aws(
            kms.generate_data_key_pair_without_plaintext(&dry),
            ErrorKind::DryRunOperationException,
        );
    }
    kms.disable_key(&key_req(&key)).unwrap();
    for spec in [DataKeyPairSpec::Rsa4096, DataKeyPairSpec::EccNistP256] {
        let mut dry = pair_req(&key, spec);
        dry.dry_run = true;
        assert_aws(
            kms.generate_data_key_pair(&dry),
            ErrorKind::DisabledException,
        );
        assert_aws(
            kms.generate_data_key_pair(&pair_req(&key, spec)),
            ErrorKind::DisabledException,
        );
    }
    kms.enable_key(&key_req(&key)).unwrap();
    kms.generate_data_key_pair(&pair_req(&key, DataKeyPairSpec::EccNistP256))
        .unwrap();
}

#[test]
fn a_grant_allows_exactly_the_pair_operations_it_lists_under_its_constraints() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let user = kms.acting_as(USER);
    let spec = DataKeyPairSpec::EccNistP256;
    assert_aws(
        user.generate_data_key_pair(&pair_req(&key, spec)),
        ErrorKind::AccessDeniedException,
    );
    // An RSA request is refused before any RSA key is generated; the answer is the same.
    assert_aws(
        user.generate_data_key_pair(&pair_req(&key, DataKeyPairSpec::Rsa2048)),
        ErrorKind::AccessDeniedException,
    );
    kms.create_grant(&CreateGrantRequest {
        key_id: key.clone(),
        grantee_principal: USER.into(),
        operations: vec![GrantOperation::GenerateDataKeyPairWithoutPlaintext],
        constraints: Some(GrantConstraints {
            encryption_context_subset: Some(ctx(&[("tenant", "a")])),
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap();
    let mut allowed = pair_req(&key, spec);
    allowed.encryption_context = ctx(&[("tenant", "a"), ("extra", "x")]);
    let r = user
        .generate_data_key_pair_without_plaintext(&allowed)
        .unwrap();
    // The grant does not extend to the plaintext form, to another context, or to Decrypt.
    assert_aws(
        user.generate_data_key_pair(&allowed),
        ErrorKind::AccessDeniedException,
    );
    let mut other = pair_req(&key, spec);
    other.encryption_context = ctx(&[("tenant", "b")]);
    assert_aws(
        user.generate_data_key_pair_without_plaintext(&other),
        ErrorKind::AccessDeniedException,
    );
    assert_aws(
        user.decrypt(&DecryptRequest {
            ciphertext_blob: r.private_key_ciphertext_blob.clone(),
            encryption_context: allowed.encryption_context.clone(),
            ..Default::default()
        }),
        ErrorKind::AccessDeniedException,
    );
    decrypt(
        &kms,
        &r.private_key_ciphertext_blob,
        allowed.encryption_context,
    )
    .unwrap();
}

#[test]
fn grant_tokens_are_shape_checked_as_invalid_grant_token() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    let mut req = pair_req(&key, DataKeyPairSpec::EccNistP256);
    req.grant_tokens = vec![String::new()];
    assert_aws(
        kms.generate_data_key_pair(&req),
        ErrorKind::InvalidGrantTokenException,
    );
}

#[test]
fn a_successful_pair_is_counted_for_get_key_last_usage() {
    let (kms, _clock) = kms();
    let key = create_key(&kms, None);
    kms.generate_data_key_pair_without_plaintext(&pair_req(&key, DataKeyPairSpec::EccNistP256))
        .unwrap();
    let usage = kms.get_key_last_usage(&key_req(&key)).unwrap();
    let json = serde_json::to_string(&usage).unwrap();
    assert!(
        json.contains("GenerateDataKeyPairWithoutPlaintext"),
        "{json}"
    );
}

#[test]
fn a_refused_pair_is_one_aggregated_record_in_the_event_log_not_also_a_record_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (mut config, clock) = config();
    config.data_plane_event_interval = Some(std::time::Duration::from_secs(5));
    let kms = Kms::open_with(dir.path(), config).unwrap();
    let signing = create_key_of(&kms, KeySpec::EccNistP256, KeyUsage::SignVerify);
    // Through `dispatch`, as the daemon calls: where a failed control-plane call is recorded.
    let refused = kms.dispatch(&kmscks::ops::Request::GenerateDataKeyPair(pair_req(
        &signing,
        DataKeyPairSpec::EccNistP256,
    )));
    assert_aws(refused, ErrorKind::InvalidKeyUsageException);
    let lookup = || {
        kms.lookup_events(&LookupEventsRequest {
            event_name: Some("GenerateDataKeyPair".into()),
            ..Default::default()
        })
        .unwrap()
        .events
        .iter()
        .map(CloudTrailRecord::value)
        .collect::<Vec<_>>()
    };
    clock.advance(std::time::Duration::from_secs(5));
    support::wait_until(
        "the aggregated record",
        std::time::Duration::from_secs(10),
        || !lookup().is_empty(),
    );
    let records = lookup();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["errorCode"], "InvalidKeyUsageException");
    assert_eq!(records[0]["additionalEventData"]["aggregated"]["calls"], 1);
}
