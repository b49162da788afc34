//! AWS quota emulation (spec §6, `KmsConfig::quotas`, `kmscksd --emulate-aws-quotas`): request
//! rates answering ThrottlingException, per custom key store (with AWS's per-operation
//! costs), per account and key type (symmetric, RSA, elliptic curve, each data key pair spec)
//! and per custom key store operation — and, when off (the default), no throttling at any
//! rate. Rates are measured on the instance's ManualClock: the tests move
//! time, they never wait for it.

mod common;

use std::time::Duration;

use common::*;
use kmscks::api::kms::*;
use kmscks::secret::SecretBytes;
use kmscks::types::{DataKeyPairSpec, KeySpec, KeyUsage, ManualClock, SigningAlgorithm};
use kmscks::{ErrorKind, Kms, KmsError, QuotaConfig};

/// An in-memory instance emulating `quotas`, its clock moved a second on so that every
/// bucket is full again after the set-up the test does next.
fn emulated(quotas: QuotaConfig) -> (Kms, ManualClock) {
    let (mut config, clock) = config();
    config.quotas = Some(quotas);
    (Kms::in_memory_with(config), clock)
}

/// A connected store with one key, the clock then a second on (buckets full).
fn store_key(kms: &Kms, clock: &ManualClock, name: &str) -> String {
    let store = connected_store(kms, clock, name);
    let key = create_key(kms, Some(&store.store_id));
    clock.advance(Duration::from_secs(1));
    key
}

fn encrypt(kms: &Kms, key: &str) -> kmscks::Result<EncryptResponse> {
    kms.encrypt(&EncryptRequest {
        key_id: key.into(),
        plaintext: SecretBytes::from_slice(b"quota"),
        ..Default::default()
    })
}

fn data_key(kms: &Kms, key: &str) -> kmscks::Result<GenerateDataKeyResponse> {
    kms.generate_data_key(&GenerateDataKeyRequest {
        key_id: key.into(),
        number_of_bytes: Some(32),
        ..Default::default()
    })
}

fn describe_stores(kms: &Kms) -> kmscks::Result<DescribeCustomKeyStoresResponse> {
    kms.describe_custom_key_stores(&DescribeCustomKeyStoresRequest::default())
}

/// Asserts AWS's throttling answer, which names nothing (no key, no store, no principal).
#[track_caller]
fn assert_throttled<T: std::fmt::Debug>(result: kmscks::Result<T>) -> KmsError {
    let e = assert_aws(result, ErrorKind::ThrottlingException);
    assert_eq!(e.message(), "Rate exceeded");
    e
}

#[test]
fn a_client_over_the_store_rate_is_throttled_and_one_under_it_never_is() {
    let (kms, clock) = emulated(QuotaConfig::default());
    let rate = QuotaConfig::default().store_crypto_rate;
    let key = store_key(&kms, &clock, "Busy");
    // 1,000 requests a second, for three seconds: under 1,800, never throttled.
    for _ in 0..3000 {
        encrypt(&kms, &key).unwrap();
        clock.advance_millis(1);
    }
    // A burst: one second's worth passes, the next request does not.
    let blob = encrypt(&kms, &key).unwrap().ciphertext_blob;
    for _ in 1..rate {
        encrypt(&kms, &key).unwrap();
    }
    assert_throttled(encrypt(&kms, &key));
    // Decrypt finds the store from the blob: throttled on the same rate.
    assert_throttled(kms.decrypt(&DecryptRequest {
        ciphertext_blob: blob.clone(),
        ..Default::default()
    }));
    // A millisecond refills 1.8 requests: one passes, the next does not.
    clock.advance_millis(1);
    kms.decrypt(&DecryptRequest {
        ciphertext_blob: blob,
        ..Default::default()
    })
    .unwrap();
    assert_throttled(encrypt(&kms, &key));
}

#[test]
fn generate_data_key_costs_three_requests_on_a_store() {
    let (kms, clock) = emulated(QuotaConfig::default());
    let q = QuotaConfig::default();
    let key = store_key(&kms, &clock, "DataKeys");
    for _ in 0..q.store_crypto_rate / q.data_key_cost {
        data_key(&kms, &key).unwrap();
    }
    assert_throttled(data_key(&kms, &key));
    assert_throttled(encrypt(&kms, &key));
    // 2 ms refill 3.6 requests: an Encrypt (1) passes, then a GenerateDataKey (3) does not.
    clock.advance_millis(2);
    encrypt(&kms, &key).unwrap();
    assert_throttled(data_key(&kms, &key));
}

#[test]
fn each_store_has_its_own_rate() {
    let (kms, clock) = emulated(QuotaConfig {
        store_crypto_rate: 5,
        ..QuotaConfig::default()
    });
    let a = store_key(&kms, &clock, "A");
    let b = store_key(&kms, &clock, "B");
    for _ in 0..5 {
        encrypt(&kms, &a).unwrap();
    }
    assert_throttled(encrypt(&kms, &a));
    for _ in 0..5 {
        encrypt(&kms, &b).unwrap();
    }
    assert_throttled(encrypt(&kms, &b));
    // An alias reaches the same store's rate.
    kms.create_alias(&AliasRequest {
        alias_name: "alias/a".into(),
        target_key_id: a.clone(),
    })
    .unwrap();
    assert_throttled(encrypt(&kms, "alias/a"));
}

#[test]
fn the_account_rate_covers_every_key_and_generate_random() {
    let (kms, clock) = emulated(QuotaConfig {
        account_crypto_rate: 10,
        ..QuotaConfig::default()
    });
    let key = create_key(&kms, None);
    clock.advance(Duration::from_secs(1));
    for _ in 0..9 {
        encrypt(&kms, &key).unwrap();
    }
    kms.generate_random(&GenerateRandomRequest {
        number_of_bytes: Some(16),
        ..Default::default()
    })
    .unwrap();
    assert_throttled(encrypt(&kms, &key));
    assert_throttled(kms.generate_random(&GenerateRandomRequest {
        number_of_bytes: Some(16),
        ..Default::default()
    }));
    clock.advance_millis(100);
    encrypt(&kms, &key).unwrap();
    assert_throttled(encrypt(&kms, &key));
}

fn sign(kms: &Kms, key: &str, alg: SigningAlgorithm) -> kmscks::Result<SignResponse> {
    kms.sign(&SignRequest {
        key_id: key.into(),
        message: SecretBytes::from_slice(b"quota"),
        signing_algorithm: Some(alg),
        ..Default::default()
    })
}

#[test]
fn a_burst_of_sign_is_throttled_at_its_key_types_rate_and_leaves_encrypt_its_own() {
    let (kms, clock) = emulated(QuotaConfig {
        account_crypto_rate: 5,
        rsa_crypto_rate: 2,
        ecc_crypto_rate: 3,
        ..QuotaConfig::default()
    });
    let ecc = create_key_of(&kms, KeySpec::EccNistP256, KeyUsage::SignVerify);
    let rsa = create_key_of(&kms, KeySpec::Rsa2048, KeyUsage::SignVerify);
    let symmetric = create_key(&kms, None);
    clock.advance(Duration::from_secs(1));

    // Sign and Verify on elliptic curve keys share the ECC rate, 3 a second.
    let es256 = SigningAlgorithm::EcdsaSha256;
    let signature = sign(&kms, &ecc, es256).unwrap().signature;
    sign(&kms, &ecc, es256).unwrap();
    sign(&kms, &ecc, es256).unwrap();
    assert_throttled(sign(&kms, &ecc, es256));
    assert_throttled(kms.verify(&VerifyRequest {
        key_id: ecc.clone(),
        message: SecretBytes::from_slice(b"quota"),
        signing_algorithm: Some(es256),
        signature,
        ..Default::default()
    }));
    // The burst left the symmetric rate whole: five Encrypts, then the sixth is throttled.
    for _ in 0..5 {
        encrypt(&kms, &symmetric).unwrap();
    }
    assert_throttled(encrypt(&kms, &symmetric));
    // And RSA keys have a rate of their own, which neither burst touched.
    let rs256 = SigningAlgorithm::RsassaPkcs1V15Sha256;
    sign(&kms, &rsa, rs256).unwrap();
    sign(&kms, &rsa, rs256).unwrap();
    assert_throttled(sign(&kms, &rsa, rs256));
    // The ECC rate refills at 3 a second: one more request a third of a second on.
    clock.advance_millis(334);
    sign(&kms, &ecc, es256).unwrap();
    assert_throttled(sign(&kms, &ecc, es256));
}

#[test]
fn generate_data_key_pair_has_a_rate_per_pair_spec_apart_from_the_symmetric_rate() {
    let (kms, clock) = emulated(QuotaConfig {
        account_crypto_rate: 1,
        ..QuotaConfig::default()
    });
    let key = create_key(&kms, None);
    clock.advance(Duration::from_secs(1));
    let pair = |spec| {
        kms.generate_data_key_pair_without_plaintext(&GenerateDataKeyPairRequest {
            key_id: key.clone(),
            key_pair_spec: Some(spec),
            ..Default::default()
        })
    };
    let p521 = DataKeyPairSpec::EccNistP521;
    let per_second = QuotaConfig::default().data_key_pair_rates[&p521].millis() / 1000;
    assert!(
        per_second > 1,
        "AWS's ECC_NIST_P521 rate is {per_second} a second"
    );
    for _ in 0..per_second {
        pair(p521).unwrap();
    }
    assert_throttled(pair(p521));
    pair(DataKeyPairSpec::EccNistP384).unwrap();
    // The pairs took nothing of the symmetric rate (1 a second here).
    encrypt(&kms, &key).unwrap();
    assert_throttled(encrypt(&kms, &key));
    clock.advance(Duration::from_secs(1));
    pair(p521).unwrap();
}

#[test]
fn a_batch_counts_each_item_and_throttles_only_those_over_the_rate() {
    let (kms, clock) = emulated(QuotaConfig {
        store_crypto_rate: 10,
        ..QuotaConfig::default()
    });
    let key = store_key(&kms, &clock, "Batch");
    let items: Vec<EncryptRequest> = (0..12)
        .map(|_| EncryptRequest {
            key_id: key.clone(),
            plaintext: SecretBytes::from_slice(b"item"),
            ..Default::default()
        })
        .collect();
    let results = kms.encrypt_batch(&items);
    assert!(results[..10].iter().all(Result::is_ok), "{results:?}");
    for r in results[10..].iter().cloned() {
        assert_throttled(r);
    }
    clock.advance(Duration::from_secs(1));
    let blobs: Vec<DecryptRequest> = results[..10]
        .iter()
        .map(|r| DecryptRequest {
            ciphertext_blob: r.as_ref().unwrap().ciphertext_blob.clone(),
            ..Default::default()
        })
        .collect();
    assert!(kms.decrypt_batch(&blobs).iter().all(Result::is_ok));
    assert_throttled(kms.decrypt_batch(&blobs[..1]).remove(0));
}

#[test]
fn a_data_key_batch_counts_each_item_and_throttles_only_those_over_the_rate() {
    // Items alike, which without quotas would go to the engine as one run: each is charged.
    let quotas = QuotaConfig {
        store_crypto_rate: 10,
        ..QuotaConfig::default()
    };
    let per_item = quotas.data_key_cost;
    let (kms, clock) = emulated(quotas);
    let key = store_key(&kms, &clock, "DataKeys");
    let items: Vec<GenerateDataKeyRequest> = (0..12)
        .map(|_| GenerateDataKeyRequest {
            key_id: key.clone(),
            number_of_bytes: Some(32),
            ..Default::default()
        })
        .collect();
    let results = kms.generate_data_key_batch(&items, true);
    let allowed = (10 / per_item) as usize;
    assert!(allowed < 12, "the test needs items over the rate");
    assert!(results[..allowed].iter().all(Result::is_ok), "{results:?}");
    for r in results.into_iter().skip(allowed) {
        assert_throttled(r);
    }
}

#[test]
fn the_custom_key_store_api_has_its_own_rate() {
    let (kms, clock) = emulated(QuotaConfig::default());
    let key = store_key(&kms, &clock, "Api");
    for _ in 0..QuotaConfig::default().key_store_api_rate {
        describe_stores(&kms).unwrap();
    }
    assert_throttled(describe_stores(&kms));
    // Cryptographic requests are not charged to it.
    encrypt(&kms, &key).unwrap();
    clock.advance_millis(200);
    describe_stores(&kms).unwrap();
    assert_throttled(describe_stores(&kms));
}

#[test]
fn exhausting_describe_custom_key_stores_does_not_throttle_disconnect_custom_key_store() {
    // AWS computes each request quota independently: each of the six custom key store
    // operations has its own rate.
    let (kms, clock) = emulated(QuotaConfig::default());
    let store = connected_store(&kms, &clock, "PerOperation");
    clock.advance(Duration::from_secs(1));
    for _ in 0..QuotaConfig::default().key_store_api_rate {
        describe_stores(&kms).unwrap();
    }
    assert_throttled(describe_stores(&kms));
    kms.disconnect_custom_key_store(&CustomKeyStoreIdRequest {
        custom_key_store_id: store.store_id.clone(),
    })
    .unwrap();
    // The exhausted operation is still throttled, at the same instant.
    assert_throttled(describe_stores(&kms));
}

#[test]
fn without_emulation_nothing_is_throttled_at_any_rate() {
    let (kms, clock) = kms();
    assert!(kms.quotas().is_none(), "off by default");
    let key = {
        let store = connected_store(&kms, &clock, "Free");
        create_key(&kms, Some(&store.store_id))
    };
    // Far beyond every emulated rate, all at one instant.
    for _ in 0..4000 {
        encrypt(&kms, &key).unwrap();
    }
    for _ in 0..1000 {
        data_key(&kms, &key).unwrap();
    }
    let items: Vec<EncryptRequest> = (0..2000)
        .map(|_| EncryptRequest {
            key_id: key.clone(),
            plaintext: SecretBytes::from_slice(b"item"),
            ..Default::default()
        })
        .collect();
    assert!(kms.encrypt_batch(&items).iter().all(Result::is_ok));
    for _ in 0..50 {
        describe_stores(&kms).unwrap();
    }
}
