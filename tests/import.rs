//! Importing key material into Origin EXTERNAL keys, AWS-exact: a new key waits in
//! `PendingImport`; GetParametersForImport's public key wraps the material with each of AWS's
//! wrapping algorithms; the import enables the key; a reimport must bring the same material;
//! DeleteImportedKeyMaterial and expiry on the clock take the material away (the data plane
//! refuses at once) and a reimport restores what it encrypted; tokens are bound to their key
//! and expire after 24 hours; each refusal with AWS's exception; everything survives a
//! restart. The material is wrapped by aws-lc-rs here and, when `openssl` is installed, by
//! openssl as an independent implementation.

mod common;

use aws_lc_rs::key_wrap::{AesKek, KeyWrapPadded, AES_256};
use aws_lc_rs::rsa::{
    OaepAlgorithm, OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA1_MGF1SHA1,
    OAEP_SHA256_MGF1SHA256,
};
use common::*;
use kmscks::api::kms::*;
use kmscks::secret::SecretBytes;
use kmscks::types::{
    Clock, ExpirationModel, ImportType, KeyState, ManualClock, Origin, Timestamp,
    WrappingAlgorithm, WrappingKeySpec,
};
use kmscks::{ErrorKind, Kms};

const MATERIAL: [u8; 32] = [0x42; 32];
const DAY_MS: i64 = 86_400_000;

fn create_external(kms: &Kms) -> String {
    kms.create_key(&CreateKeyRequest {
        origin: Some(Origin::External),
        ..Default::default()
    })
    .unwrap()
    .key_metadata
    .key_id
}

fn parameters(
    kms: &Kms,
    key: &str,
    algorithm: WrappingAlgorithm,
    spec: WrappingKeySpec,
) -> kmscks::Result<GetParametersForImportResponse> {
    kms.get_parameters_for_import(&GetParametersForImportRequest {
        key_id: key.into(),
        wrapping_algorithm: Some(algorithm),
        wrapping_key_spec: Some(spec),
    })
}

/// GetParametersForImport with RSAES_OAEP_SHA_256 and a 2048-bit wrapping key.
fn oaep_parameters(kms: &Kms, key: &str) -> GetParametersForImportResponse {
    parameters(
        kms,
        key,
        WrappingAlgorithm::RsaesOaepSha256,
        WrappingKeySpec::Rsa2048,
    )
    .unwrap()
}

fn oaep(public_der: &[u8], alg: &'static OaepAlgorithm, data: &[u8]) -> Vec<u8> {
    let public =
        OaepPublicEncryptingKey::new(PublicEncryptingKey::from_der(public_der).unwrap()).unwrap();
    let mut out = vec![0; public.ciphertext_size()];
    let n = public.encrypt(alg, data, &mut out, None).unwrap().len();
    out.truncate(n);
    out
}

/// `material` wrapped under `public_der` with `algorithm`, as the AWS developer guide's
/// openssl recipes do it.
fn wrap(public_der: &[u8], algorithm: WrappingAlgorithm, material: &[u8]) -> Vec<u8> {
    let (alg, rsa_aes) = match algorithm {
        WrappingAlgorithm::RsaesOaepSha1 => (&OAEP_SHA1_MGF1SHA1, false),
        WrappingAlgorithm::RsaesOaepSha256 => (&OAEP_SHA256_MGF1SHA256, false),
        WrappingAlgorithm::RsaAesKeyWrapSha1 => (&OAEP_SHA1_MGF1SHA1, true),
        WrappingAlgorithm::RsaAesKeyWrapSha256 => (&OAEP_SHA256_MGF1SHA256, true),
        other => panic!("no wrapping for {other}"),
    };
    if !rsa_aes {
        return oaep(public_der, alg, material);
    }
    let mut aes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut aes).unwrap();
    let mut out = oaep(public_der, alg, &aes);
    let mut wrapped = vec![0; material.len() + 16];
    let n = AesKek::new(&AES_256, &aes)
        .unwrap()
        .wrap_with_padding(material, &mut wrapped)
        .unwrap()
        .len();
    out.extend_from_slice(&wrapped[..n]);
    out
}

fn import_req(
    key: &str,
    p: &GetParametersForImportResponse,
    sealed: Vec<u8>,
    valid_to: Option<Timestamp>,
) -> ImportKeyMaterialRequest {
    ImportKeyMaterialRequest {
        key_id: key.into(),
        import_token: p.import_token.clone(),
        encrypted_key_material: sealed,
        valid_to,
        expiration_model: Some(if valid_to.is_some() {
            ExpirationModel::KeyMaterialExpires
        } else {
            ExpirationModel::KeyMaterialDoesNotExpire
        }),
        ..Default::default()
    }
}

/// Imports `material` (never expiring) with RSAES_OAEP_SHA_256 under a 2048-bit key.
fn import(kms: &Kms, key: &str, material: &[u8]) -> kmscks::Result<KeyMaterialResponse> {
    let p = parameters(
        kms,
        key,
        WrappingAlgorithm::RsaesOaepSha256,
        WrappingKeySpec::Rsa2048,
    )?;
    let sealed = wrap(&p.public_key, WrappingAlgorithm::RsaesOaepSha256, material);
    kms.import_key_material(&import_req(key, &p, sealed, None))
}

fn encrypt(kms: &Kms, key: &str) -> kmscks::Result<Vec<u8>> {
    Ok(kms
        .encrypt(&EncryptRequest {
            key_id: key.into(),
            plaintext: SecretBytes::new(b"imported".to_vec()),
            ..Default::default()
        })?
        .ciphertext_blob)
}

fn decrypts(kms: &Kms, blob: &[u8]) -> kmscks::Result<()> {
    let p = kms.decrypt(&DecryptRequest {
        ciphertext_blob: blob.to_vec(),
        ..Default::default()
    })?;
    assert_eq!(p.plaintext.expose(), b"imported");
    Ok(())
}

fn now(clock: &ManualClock) -> Timestamp {
    clock.now()
}

#[test]
fn an_external_key_waits_in_pending_import_then_the_import_enables_it() {
    let (kms, _clock) = kms();
    let key = create_external(&kms);
    let m = describe_key(&kms, &key);
    assert_eq!(
        (m.origin, m.key_state, m.enabled),
        (Origin::External, KeyState::PendingImport, false)
    );
    assert_eq!((m.expiration_model, m.valid_to), (None, None));
    let e = assert_aws(encrypt(&kms, &key), ErrorKind::KMSInvalidStateException);
    assert!(e.message().contains("pending import"), "{e}");
    assert_aws(
        kms.enable_key(&key_req(&key)),
        ErrorKind::KMSInvalidStateException,
    );

    let done = import(&kms, &key, &MATERIAL).unwrap();
    assert_eq!(done.key_id, m.arn);
    assert_eq!(done.key_material_id.len(), 64);
    assert!(done.key_material_id.bytes().all(|b| b.is_ascii_hexdigit()));
    let m = describe_key(&kms, &key);
    assert_eq!((m.key_state, m.enabled), (KeyState::Enabled, true));
    assert_eq!(
        m.expiration_model,
        Some(ExpirationModel::KeyMaterialDoesNotExpire)
    );
    let blob = encrypt(&kms, &key).unwrap();
    decrypts(&kms, &blob).unwrap();
    // A key of the default key store with imported material seals data key pairs too.
    let pair = kms
        .generate_data_key_pair_without_plaintext(&GenerateDataKeyPairRequest {
            key_id: key.clone(),
            key_pair_spec: Some(kmscks::types::DataKeyPairSpec::EccNistP256),
            ..Default::default()
        })
        .unwrap();
    let opened = kms
        .decrypt(&DecryptRequest {
            ciphertext_blob: pair.private_key_ciphertext_blob,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(opened.key_id.as_ref(), m.arn.as_str());
    assert_eq!(opened.plaintext.expose()[0], 0x30, "PKCS#8 DER");
}

#[test]
fn every_wrapping_algorithm_and_key_spec_aws_accepts_imports_the_material() {
    let (kms, _clock) = kms();
    let cases = [
        (WrappingAlgorithm::RsaesOaepSha1, WrappingKeySpec::Rsa2048),
        (WrappingAlgorithm::RsaesOaepSha256, WrappingKeySpec::Rsa3072),
        (
            WrappingAlgorithm::RsaAesKeyWrapSha1,
            WrappingKeySpec::Rsa2048,
        ),
        (
            WrappingAlgorithm::RsaAesKeyWrapSha256,
            WrappingKeySpec::Rsa4096,
        ),
    ];
    for (algorithm, spec) in cases {
        let key = create_external(&kms);
        let p = parameters(&kms, &key, algorithm, spec).unwrap();
        let bits = PublicEncryptingKey::from_der(&p.public_key)
            .unwrap()
            .key_size_bits();
        assert_eq!(format!("RSA_{bits}"), spec.as_str());
        assert_eq!(p.key_id, describe_key(&kms, &key).arn);
        let sealed = wrap(&p.public_key, algorithm, &MATERIAL);
        kms.import_key_material(&import_req(&key, &p, sealed, None))
            .unwrap_or_else(|e| panic!("{algorithm} {spec}: {e}"));
        decrypts(&kms, &encrypt(&kms, &key).unwrap()).unwrap();
    }
}

#[test]
fn material_sealed_with_another_algorithm_than_the_tokens_is_an_invalid_ciphertext() {
    let (kms, _clock) = kms();
    let key = create_external(&kms);
    let p = oaep_parameters(&kms, &key);
    let sealed = wrap(&p.public_key, WrappingAlgorithm::RsaesOaepSha1, &MATERIAL);
    let e = assert_aws(
        kms.import_key_material(&import_req(&key, &p, sealed, None)),
        ErrorKind::InvalidCiphertextException,
    );
    assert!(!e.message().contains("42"), "{e}");
    let mut sealed = wrap(&p.public_key, WrappingAlgorithm::RsaesOaepSha256, &MATERIAL);
    sealed[10] ^= 1;
    assert_aws(
        kms.import_key_material(&import_req(&key, &p, sealed, None)),
        ErrorKind::InvalidCiphertextException,
    );
    assert_eq!(describe_key(&kms, &key).key_state, KeyState::PendingImport);
}

#[test]
fn material_that_is_not_256_bits_is_refused_naming_its_size() {
    let (kms, _clock) = kms();
    let key = create_external(&kms);
    let e = assert_aws(
        import(&kms, &key, &[7; 16]),
        ErrorKind::IncorrectKeyMaterialException,
    );
    assert!(e.message().contains("16 bytes"), "{e}");
}

#[test]
fn deleting_the_material_closes_the_key_and_the_same_material_reopens_its_ciphertexts() {
    let (kms, _clock) = kms();
    let key = create_external(&kms);
    let first = import(&kms, &key, &MATERIAL).unwrap();
    let blob = encrypt(&kms, &key).unwrap();

    let deleted = kms
        .delete_imported_key_material(&DeleteImportedKeyMaterialRequest {
            key_id: key.clone(),
            key_material_id: None,
        })
        .unwrap();
    assert_eq!(deleted.key_material_id, Some(first.key_material_id.clone()));
    assert_eq!(describe_key(&kms, &key).key_state, KeyState::PendingImport);
    assert_aws(decrypts(&kms, &blob), ErrorKind::KMSInvalidStateException);
    assert_aws(encrypt(&kms, &key), ErrorKind::KMSInvalidStateException);

    let e = assert_aws(
        import(&kms, &key, &[0x43; 32]),
        ErrorKind::IncorrectKeyMaterialException,
    );
    assert!(e.message().contains("not the material"), "{e}");
    let again = import(&kms, &key, &MATERIAL).unwrap();
    assert_eq!(again.key_material_id, first.key_material_id);
    decrypts(&kms, &blob).unwrap();
}

#[test]
fn deleting_the_material_of_a_key_pending_deletion_keeps_it_pending_deletion_then_a_cancel_leaves_it_pending_import(
) {
    let (kms, _clock) = kms();
    let key = create_external(&kms);
    let first = import(&kms, &key, &MATERIAL).unwrap();
    let blob = encrypt(&kms, &key).unwrap();
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();

    let deleted = kms
        .delete_imported_key_material(&DeleteImportedKeyMaterialRequest {
            key_id: key.clone(),
            key_material_id: None,
        })
        .unwrap();
    assert_eq!(deleted.key_material_id, Some(first.key_material_id));
    let m = describe_key(&kms, &key);
    assert_eq!(
        (m.key_state, m.deletion_date.is_some()),
        (KeyState::PendingDeletion, true)
    );

    kms.cancel_key_deletion(&key_req(&key)).unwrap();
    assert_eq!(describe_key(&kms, &key).key_state, KeyState::PendingImport);
    assert_aws(decrypts(&kms, &blob), ErrorKind::KMSInvalidStateException);
    import(&kms, &key, &MATERIAL).unwrap();
    decrypts(&kms, &blob).unwrap();
}

#[test]
fn deleting_the_material_of_a_key_without_material_succeeds_and_changes_nothing() {
    let (kms, _clock) = kms();
    let key = create_external(&kms);
    let arn = describe_key(&kms, &key).arn;
    let delete = |key_material_id: Option<String>| {
        kms.delete_imported_key_material(&DeleteImportedKeyMaterialRequest {
            key_id: key.clone(),
            key_material_id,
        })
    };

    let never = delete(None).unwrap();
    assert_eq!((never.key_id, never.key_material_id), (arn, None));
    assert_eq!(describe_key(&kms, &key).key_state, KeyState::PendingImport);
    assert_aws(delete(Some("0".repeat(64))), ErrorKind::NotFoundException);

    // Its first material is still a new one; once that is deleted, a second deletion changes
    // nothing and names it.
    let first = import(&kms, &key, &MATERIAL).unwrap();
    delete(None).unwrap();
    let again = delete(None).unwrap();
    assert_eq!(again.key_material_id, Some(first.key_material_id));
    assert_eq!(describe_key(&kms, &key).key_state, KeyState::PendingImport);
}

#[test]
fn a_reimport_into_an_enabled_key_must_bring_the_same_material_and_may_change_the_expiry() {
    let (kms, clock) = kms();
    let key = create_external(&kms);
    let first = import(&kms, &key, &MATERIAL).unwrap();
    assert_aws(
        import(&kms, &key, &[1; 32]),
        ErrorKind::IncorrectKeyMaterialException,
    );
    let p = oaep_parameters(&kms, &key);
    let sealed = wrap(&p.public_key, WrappingAlgorithm::RsaesOaepSha256, &MATERIAL);
    let until = Timestamp(now(&clock).0 + 10 * DAY_MS);
    let mut req = import_req(&key, &p, sealed, Some(until));
    req.import_type = Some(ImportType::NewKeyMaterial);
    assert_aws(
        kms.import_key_material(&req),
        ErrorKind::UnsupportedOperationException,
    );
    req.import_type = Some(ImportType::ExistingKeyMaterial);
    req.key_material_id = Some(first.key_material_id.clone());
    kms.import_key_material(&req).unwrap();
    let m = describe_key(&kms, &key);
    assert_eq!(
        m.expiration_model,
        Some(ExpirationModel::KeyMaterialExpires)
    );
    assert_eq!(m.valid_to, Some(until));
}

#[test]
fn material_expires_at_valid_to_on_the_clock_and_the_key_becomes_pending_import() {
    let (kms, clock) = kms();
    let key = create_external(&kms);
    let p = parameters(
        &kms,
        &key,
        WrappingAlgorithm::RsaAesKeyWrapSha256,
        WrappingKeySpec::Rsa2048,
    )
    .unwrap();
    let until = Timestamp(now(&clock).0 + 30 * DAY_MS);
    let sealed = wrap(
        &p.public_key,
        WrappingAlgorithm::RsaAesKeyWrapSha256,
        &MATERIAL,
    );
    kms.import_key_material(&import_req(&key, &p, sealed, Some(until)))
        .unwrap();
    let blob = encrypt(&kms, &key).unwrap();
    assert_eq!(describe_key(&kms, &key).valid_to, Some(until));

    clock.advance_days(29);
    kms.run_scheduled_deletions().unwrap();
    decrypts(&kms, &blob).unwrap();
    clock.advance_days(1);
    // Refused from the instant itself, whether or not a sweep has deleted the material yet
    // (the engine reads the clock for such a key).
    assert_aws(encrypt(&kms, &key), ErrorKind::KMSInvalidStateException);
    assert_aws(decrypts(&kms, &blob), ErrorKind::KMSInvalidStateException);
    kms.run_scheduled_deletions().unwrap(); // or the background worker did, at the expiry
    let m = describe_key(&kms, &key);
    assert_eq!(
        (m.key_state, m.valid_to, m.expiration_model),
        (KeyState::PendingImport, None, None)
    );
    assert_aws(decrypts(&kms, &blob), ErrorKind::KMSInvalidStateException);
    let events = kms.kms_events().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.event_name == "DeleteExpiredKeyMaterial"),
        "{:?}",
        events.iter().map(|e| &e.event_name).collect::<Vec<_>>()
    );
    import(&kms, &key, &MATERIAL).unwrap();
    decrypts(&kms, &blob).unwrap();
}

#[test]
fn valid_to_follows_the_expiration_model_and_lies_within_365_days() {
    let (kms, clock) = kms();
    let key = create_external(&kms);
    let p = oaep_parameters(&kms, &key);
    let sealed = wrap(&p.public_key, WrappingAlgorithm::RsaesOaepSha256, &MATERIAL);
    let t = now(&clock).0;
    let mut req = import_req(&key, &p, sealed, None);
    req.expiration_model = None; // AWS's default: KEY_MATERIAL_EXPIRES, which needs ValidTo
    let e = assert_aws(
        kms.import_key_material(&req),
        ErrorKind::ValidationException,
    );
    assert!(e.message().contains("ValidTo is required"), "{e}");
    req.expiration_model = Some(ExpirationModel::KeyMaterialDoesNotExpire);
    req.valid_to = Some(Timestamp(t + DAY_MS));
    assert_aws(
        kms.import_key_material(&req),
        ErrorKind::ValidationException,
    );
    req.expiration_model = Some(ExpirationModel::KeyMaterialExpires);
    for bad in [t - 1, t, t + 366 * DAY_MS] {
        req.valid_to = Some(Timestamp(bad));
        let e = assert_aws(
            kms.import_key_material(&req),
            ErrorKind::ValidationException,
        );
        assert!(e.message().contains("365 days"), "{e}");
    }
    req.valid_to = Some(Timestamp(t + 365 * DAY_MS));
    kms.import_key_material(&req).unwrap();
}

#[test]
fn an_import_token_is_bound_to_its_key_and_expires_after_24_hours() {
    let (kms, clock) = kms();
    let (a, b) = (create_external(&kms), create_external(&kms));
    let p = oaep_parameters(&kms, &a);
    assert_eq!(p.parameters_valid_to, Timestamp(now(&clock).0 + DAY_MS));
    let sealed = wrap(&p.public_key, WrappingAlgorithm::RsaesOaepSha256, &MATERIAL);
    assert_aws(
        kms.import_key_material(&import_req(&b, &p, sealed.clone(), None)),
        ErrorKind::InvalidImportTokenException,
    );
    let mut forged = import_req(&a, &p, sealed.clone(), None);
    forged.import_token[20] ^= 1;
    assert_aws(
        kms.import_key_material(&forged),
        ErrorKind::InvalidImportTokenException,
    );
    clock.advance_millis(DAY_MS + 1);
    let e = assert_aws(
        kms.import_key_material(&import_req(&a, &p, sealed, None)),
        ErrorKind::ExpiredImportTokenException,
    );
    assert!(e.message().contains("GetParametersForImport"), "{e}");
}

#[test]
fn import_operations_refuse_what_aws_refuses() {
    let (kms, _clock) = kms();
    let default_key = create_key(&kms, None);
    for result in [
        parameters(
            &kms,
            &default_key,
            WrappingAlgorithm::RsaesOaepSha256,
            WrappingKeySpec::Rsa2048,
        )
        .map(drop),
        kms.delete_imported_key_material(&DeleteImportedKeyMaterialRequest {
            key_id: default_key.clone(),
            key_material_id: None,
        })
        .map(drop),
    ] {
        let e = assert_aws(result, ErrorKind::UnsupportedOperationException);
        assert!(e.message().contains("origin is AWS_KMS"), "{e}");
    }
    let key = create_external(&kms);
    let e = assert_aws(
        parameters(
            &kms,
            &key,
            WrappingAlgorithm::RsaesPkcs1V15,
            WrappingKeySpec::Rsa2048,
        ),
        ErrorKind::ValidationException,
    );
    assert!(e.message().contains("RSAES_PKCS1_V1_5"), "{e}");
    assert_aws(
        parameters(
            &kms,
            &key,
            WrappingAlgorithm::RsaesOaepSha256,
            WrappingKeySpec::Sm2,
        ),
        ErrorKind::UnsupportedOperationException,
    );
    let e = assert_aws(
        kms.get_parameters_for_import(&GetParametersForImportRequest {
            key_id: key.clone(),
            wrapping_algorithm: Some(WrappingAlgorithm::RsaesOaepSha256),
            wrapping_key_spec: None,
        }),
        ErrorKind::ValidationException,
    );
    assert!(e.message().contains("'wrappingKeySpec'"), "{e}");
    import(&kms, &key, &MATERIAL).unwrap();
    assert_aws(
        kms.delete_imported_key_material(&DeleteImportedKeyMaterialRequest {
            key_id: key.clone(),
            key_material_id: Some("0".repeat(64)),
        }),
        ErrorKind::NotFoundException,
    );
    assert_aws(
        kms.enable_key_rotation(&EnableKeyRotationRequest {
            key_id: key.clone(),
            rotation_period_in_days: None,
        }),
        ErrorKind::UnsupportedOperationException,
    );
    assert!(
        !kms.get_key_rotation_status(&key_req(&key))
            .unwrap()
            .key_rotation_enabled
    );
    assert_aws(
        kms.create_key(&CreateKeyRequest {
            origin: Some(Origin::External),
            key_spec: Some(kmscks::types::KeySpec::Rsa2048),
            ..Default::default()
        }),
        ErrorKind::UnsupportedOperationException,
    );
    kms.schedule_key_deletion(&ScheduleKeyDeletionRequest {
        key_id: key.clone(),
        pending_window_in_days: Some(7),
    })
    .unwrap();
    assert_aws(
        import(&kms, &key, &MATERIAL),
        ErrorKind::KMSInvalidStateException,
    );
}

#[test]
fn imported_material_its_expiry_and_an_earlier_token_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (config, clock) = config();
    let (key, blob, p) = {
        let kms = Kms::open_with(dir.path(), config.clone()).unwrap();
        let key = create_external(&kms);
        let p = oaep_parameters(&kms, &key);
        let sealed = wrap(&p.public_key, WrappingAlgorithm::RsaesOaepSha256, &MATERIAL);
        let until = Timestamp(now(&clock).0 + 5 * DAY_MS);
        kms.import_key_material(&import_req(&key, &p, sealed, Some(until)))
            .unwrap();
        (key.clone(), encrypt(&kms, &key).unwrap(), p)
    };
    let kms = Kms::open_with(dir.path(), config).unwrap();
    decrypts(&kms, &blob).unwrap();
    assert!(describe_key(&kms, &key).valid_to.is_some());
    kms.delete_imported_key_material(&DeleteImportedKeyMaterialRequest {
        key_id: key.clone(),
        key_material_id: None,
    })
    .unwrap();
    let sealed = wrap(&p.public_key, WrappingAlgorithm::RsaesOaepSha256, &MATERIAL);
    kms.import_key_material(&import_req(&key, &p, sealed, None))
        .unwrap();
    decrypts(&kms, &blob).unwrap();
}

#[test]
fn material_wrapped_by_openssl_imports() {
    let Ok(version) = std::process::Command::new("openssl")
        .arg("version")
        .output()
    else {
        eprintln!("skipped: openssl is not installed");
        return;
    };
    assert!(version.status.success());
    let (kms, _clock) = kms();
    let key = create_external(&kms);
    let p = oaep_parameters(&kms, &key);
    let dir = tempfile::tempdir().unwrap();
    let (public, material, sealed) = (
        dir.path().join("public.der"),
        dir.path().join("material.bin"),
        dir.path().join("sealed.bin"),
    );
    std::fs::write(&public, &p.public_key).unwrap();
    std::fs::write(&material, MATERIAL).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["pkeyutl", "-encrypt", "-pubin", "-keyform", "DER", "-inkey"])
        .arg(&public)
        .args(["-in"])
        .arg(&material)
        .args(["-out"])
        .arg(&sealed)
        .args([
            "-pkeyopt",
            "rsa_padding_mode:oaep",
            "-pkeyopt",
            "rsa_oaep_md:sha256",
            "-pkeyopt",
            "rsa_mgf1_md:sha256",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sealed = std::fs::read(&sealed).unwrap();
    kms.import_key_material(&import_req(&key, &p, sealed, None))
        .unwrap();
    decrypts(&kms, &encrypt(&kms, &key).unwrap()).unwrap();
}

#[test]
fn a_key_in_a_custom_key_store_refuses_every_import_operation() {
    let (kms, clock) = kms();
    let f = connected_store(&kms, &clock, "import-store");
    let key = create_key(&kms, Some(&f.store_id));
    let e = assert_aws(
        parameters(
            &kms,
            &key,
            WrappingAlgorithm::RsaesOaepSha256,
            WrappingKeySpec::Rsa2048,
        ),
        ErrorKind::UnsupportedOperationException,
    );
    assert!(e.message().contains("origin is AWS_CLOUDHSM"), "{e}");
    assert_aws(
        kms.import_key_material(&ImportKeyMaterialRequest {
            key_id: key.clone(),
            import_token: vec![1],
            encrypted_key_material: vec![1],
            ..Default::default()
        }),
        ErrorKind::UnsupportedOperationException,
    );
    let e = assert_aws(
        kms.create_key(&CreateKeyRequest {
            origin: Some(Origin::External),
            custom_key_store_id: Some(f.store_id.clone()),
            ..Default::default()
        }),
        ErrorKind::UnsupportedOperationException,
    );
    assert!(e.message().contains("EXTERNAL"), "{e}");
}

#[test]
fn a_principal_the_key_policy_does_not_allow_is_refused_every_import_operation() {
    let (kms, _clock) = kms();
    let key = create_external(&kms);
    let p = oaep_parameters(&kms, &key);
    let other = kms.acting_as("arn:aws:iam::111122223333:user/uid-1001");
    let e = assert_aws(
        parameters(
            &other,
            &key,
            WrappingAlgorithm::RsaesOaepSha256,
            WrappingKeySpec::Rsa4096,
        ),
        ErrorKind::AccessDeniedException,
    );
    assert!(e.message().contains("kms:GetParametersForImport"), "{e}");
    let sealed = wrap(&p.public_key, WrappingAlgorithm::RsaesOaepSha256, &MATERIAL);
    assert_aws(
        other.import_key_material(&import_req(&key, &p, sealed, None)),
        ErrorKind::AccessDeniedException,
    );
    assert_aws(
        other.delete_imported_key_material(&DeleteImportedKeyMaterialRequest {
            key_id: key.clone(),
            key_material_id: None,
        }),
        ErrorKind::AccessDeniedException,
    );
    assert_eq!(describe_key(&kms, &key).key_state, KeyState::PendingImport);
}
