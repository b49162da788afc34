//! Engine behaviour through its public API.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use kmscks::engine::*;
use kmscks::secret::KeyMaterial;
use kmscks::types::{DataKeySpec, HsmId, KeyId, KeyRef, Scope};
use kmscks::{err, ErrorKind};

const P: &str = "arn:aws:iam::111122223333:user/alice";

struct Fixture {
    engine: Arc<Engine>,
    scope: Scope,
    /// Default-store key (every shard).
    dflt: KeyId,
    /// Key held only by `h1`.
    k1: KeyId,
    /// Key held only by `h2`.
    k2: KeyId,
    h1: HsmSlot,
    h2: HsmSlot,
    /// `k1`'s material, to restore it after an HSM loss.
    m1: KeyMaterial,
}

fn put_key(id: KeyId) -> Control {
    Control::PutKey {
        key: id,
        gate: Gate::Open,
        authorizer: Arc::new(AllowAll),
    }
}

fn fixture(max_uses: u64) -> Fixture {
    fixture_with(max_uses, SEAL_CACHE, true)
}

/// [`fixture`] with the engine's sealing-context cache and batch splitting chosen: a batch
/// not split runs on the caller's shard, item runs and all.
fn fixture_with(max_uses: u64, seal_cache: usize, split_batches: bool) -> Fixture {
    let scope = Scope::default();
    let engine = Engine::new(EngineConfig {
        shards: 2,
        pin_workers: false,
        subkey_max_uses: max_uses,
        decrypt_cache: 8,
        seal_cache,
        split_batches,
        scope: scope.clone(),
    })
    .unwrap();
    let (dflt, k1, k2) = (KeyId::generate(), KeyId::generate(), KeyId::generate());
    let h1 = HsmSlot::Hsm(HsmId::generate());
    let h2 = HsmSlot::Hsm(HsmId::generate());
    let m1 = KeyMaterial::generate();
    engine
        .apply(&[
            Control::AddHsm {
                hsm: HsmSlot::Default,
            },
            Control::AddHsm { hsm: h1.clone() },
            Control::AddHsm { hsm: h2.clone() },
            put_key(dflt),
            put_key(k1),
            put_key(k2),
            Control::PutReplica {
                hsm: HsmSlot::Default,
                key: dflt,
                material: KeyMaterial::generate(),
            },
            Control::PutReplica {
                hsm: h1.clone(),
                key: k1,
                material: m1.duplicate(),
            },
            Control::PutReplica {
                hsm: h2.clone(),
                key: k2,
                material: KeyMaterial::generate(),
            },
            Control::PutAlias {
                alias: "alias/one".into(),
                key: k1,
            },
        ])
        .unwrap();
    Fixture {
        engine: Arc::new(engine),
        scope,
        dflt,
        k1,
        k2,
        h1,
        h2,
        m1,
    }
}

fn ctx(pairs: &[(&str, &str)]) -> EncryptionContext {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn none() -> EncryptionContext {
    BTreeMap::new()
}

#[test]
fn encrypt_decrypt_round_trips_and_size_limits() {
    let f = fixture(1 << 20);
    for key in [f.dflt, f.k1, f.k2] {
        for len in [1usize, 32, 4096] {
            let pt = vec![7u8; len];
            let out = f.engine.encrypt(P, &KeyRef::Id(key), &pt, &none()).unwrap();
            assert_eq!(&*out.key_arn, f.scope.key_arn(&key));
            let back = f
                .engine
                .decrypt(P, &out.ciphertext_blob, &none(), None)
                .unwrap();
            assert_eq!(back.plaintext.expose(), &pt[..]);
            assert_eq!(back.key_arn, out.key_arn);
        }
    }
    for bad in [0usize, 4097] {
        let e = f
            .engine
            .encrypt(P, &KeyRef::Id(f.k1), &vec![1u8; bad], &none())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValidationException, "{bad}: {e}");
        assert!(e.message().contains("'plaintext'"), "{e}");
    }
    let e = f.engine.decrypt(P, &[], &none(), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ValidationException);
    let e = f.engine.decrypt(P, &[1u8; 10], &none(), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidCiphertextException);
}

#[test]
fn every_byte_flip_is_invalid_ciphertext() {
    let f = fixture(1 << 20);
    let c = ctx(&[("purpose", "test")]);
    for key in [f.dflt, f.k2] {
        let blob = f
            .engine
            .encrypt(P, &KeyRef::Id(key), b"attack at dawn", &c)
            .unwrap()
            .ciphertext_blob;
        for i in 0..blob.len() {
            for mask in [0x01u8, 0x80] {
                let mut b = blob.clone();
                b[i] ^= mask;
                let e = f.engine.decrypt(P, &b, &c, None).unwrap_err();
                assert_eq!(
                    e.kind(),
                    ErrorKind::InvalidCiphertextException,
                    "byte {i}: {e}"
                );
            }
        }
    }
}

#[test]
fn context_order_does_not_matter_but_content_does() {
    let f = fixture(1 << 20);
    let mut a = EncryptionContext::new();
    a.insert("zeta".into(), "1".into());
    a.insert("alpha".into(), "2".into());
    let b = ctx(&[("alpha", "2"), ("zeta", "1")]);
    let blob = f
        .engine
        .encrypt(P, &KeyRef::Id(f.k1), b"x", &a)
        .unwrap()
        .ciphertext_blob;
    assert!(f.engine.decrypt(P, &blob, &b, None).is_ok());
    for wrong in [
        none(),
        ctx(&[("alpha", "2")]),
        ctx(&[("alpha", "2"), ("zeta", "1 ")]),
        ctx(&[("Alpha", "2"), ("zeta", "1")]),
        ctx(&[("alpha", "2"), ("zeta", "1"), ("x", "")]),
    ] {
        let e = f.engine.decrypt(P, &blob, &wrong, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidCiphertextException, "{wrong:?}");
    }
}

#[test]
fn incorrect_key_not_found_and_aliases() {
    let f = fixture(1 << 20);
    let blob = f
        .engine
        .encrypt(P, &KeyRef::Alias("alias/one".into()), b"x", &none())
        .unwrap()
        .ciphertext_blob;
    assert!(f
        .engine
        .decrypt(P, &blob, &none(), Some(&KeyRef::Id(f.k1)))
        .is_ok());
    assert!(f
        .engine
        .decrypt(P, &blob, &none(), Some(&KeyRef::Alias("alias/one".into())))
        .is_ok());
    let e = f
        .engine
        .decrypt(P, &blob, &none(), Some(&KeyRef::Id(f.k2)))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IncorrectKeyException);
    let ghost = KeyId::generate();
    let e = f
        .engine
        .encrypt(P, &KeyRef::Id(ghost), b"x", &none())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFoundException);
    assert_eq!(
        e.message(),
        format!("Key '{}' does not exist", f.scope.key_arn(&ghost))
    );
    let e = f
        .engine
        .encrypt(P, &KeyRef::Alias("alias/nope".into()), b"x", &none())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFoundException);
    assert_eq!(
        e.message(),
        format!("Alias {} is not found.", f.scope.alias_arn("alias/nope"))
    );
    f.engine
        .apply(&[Control::RemoveAlias {
            alias: "alias/one".into(),
        }])
        .unwrap();
    assert!(f
        .engine
        .encrypt(P, &KeyRef::Alias("alias/one".into()), b"x", &none())
        .is_err());
}

#[test]
fn gates_and_authorizer() {
    let f = fixture(1 << 20);
    let arn = f.scope.key_arn(&f.k2);
    let blob = f
        .engine
        .encrypt(P, &KeyRef::Id(f.k2), b"x", &none())
        .unwrap()
        .ciphertext_blob;
    f.engine
        .apply(&[Control::SetGate {
            key: f.k2,
            gate: Gate::Closed(err!(DisabledException, "{arn} is disabled.")),
        }])
        .unwrap();
    let e = f
        .engine
        .encrypt(P, &KeyRef::Id(f.k2), b"x", &none())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DisabledException);
    assert_eq!(e.message(), format!("{arn} is disabled."));
    let e = f.engine.decrypt(P, &blob, &none(), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DisabledException);
    let e = f
        .engine
        .generate_data_key(
            P,
            &KeyRef::Id(f.k2),
            Some(DataKeySpec::Aes256),
            None,
            &none(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DisabledException);
    f.engine
        .apply(&[Control::SetGate {
            key: f.k2,
            gate: Gate::Open,
        }])
        .unwrap();
    assert!(f.engine.decrypt(P, &blob, &none(), None).is_ok());

    // Only Decrypt allowed, only for alice.
    let only_decrypt = |p: &str, a: Action| p == P && a == Action::Decrypt;
    f.engine
        .apply(&[Control::PutKey {
            key: f.k2,
            gate: Gate::Open,
            authorizer: Arc::new(only_decrypt),
        }])
        .unwrap();
    assert!(f.engine.decrypt(P, &blob, &none(), None).is_ok());
    let e = f
        .engine
        .encrypt(P, &KeyRef::Id(f.k2), b"x", &none())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AccessDeniedException);
    assert_eq!(
        e.message(),
        format!(
            "User: {P} is not authorized to perform: kms:Encrypt on resource: {arn} because no \
             resource-based policy allows the kms:Encrypt action"
        )
    );
    let e = f.engine.decrypt("bob", &blob, &none(), None).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AccessDeniedException);
    assert!(e.message().contains("kms:Decrypt"));
    assert!(f
        .engine
        .apply(&[Control::SetGate {
            key: KeyId::generate(),
            gate: Gate::Open
        }])
        .is_err());
}

#[test]
fn removing_every_replica_gives_invalid_state_and_readding_recovers() {
    let f = fixture(1 << 20);
    let blob = f
        .engine
        .encrypt(P, &KeyRef::Id(f.k1), b"x", &none())
        .unwrap()
        .ciphertext_blob;
    f.engine
        .apply(&[Control::RemoveHsm { hsm: f.h1.clone() }])
        .unwrap();
    for r in [
        f.engine
            .encrypt(P, &KeyRef::Id(f.k1), b"x", &none())
            .map(|_| ()),
        f.engine.decrypt(P, &blob, &none(), None).map(|_| ()),
        f.engine
            .generate_data_key(P, &KeyRef::Id(f.k1), None, Some(8), &none())
            .map(|_| ()),
    ] {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::KMSInvalidStateException);
        assert!(e.message().contains("cannot communicate"), "{e}");
    }
    // The other keys are unaffected.
    assert!(f
        .engine
        .encrypt(P, &KeyRef::Id(f.k2), b"x", &none())
        .is_ok());
    // Lost material comes back on a new HSM (restored from backup): old blobs decrypt again.
    let h3 = HsmSlot::Hsm(HsmId::generate());
    let material = KeyMaterial::generate();
    let k = KeyId::generate();
    f.engine
        .apply(&[
            Control::AddHsm { hsm: h3.clone() },
            put_key(k),
            Control::PutReplica {
                hsm: h3.clone(),
                key: k,
                material: material.duplicate(),
            },
        ])
        .unwrap();
    let blob = f
        .engine
        .encrypt(P, &KeyRef::Id(k), b"kept", &none())
        .unwrap()
        .ciphertext_blob;
    f.engine
        .apply(&[Control::RemoveReplica {
            hsm: h3.clone(),
            key: k,
        }])
        .unwrap();
    assert_eq!(
        f.engine
            .decrypt(P, &blob, &none(), None)
            .unwrap_err()
            .kind(),
        ErrorKind::KMSInvalidStateException
    );
    f.engine
        .apply(&[Control::PutReplica {
            hsm: f.h2.clone(),
            key: k,
            material,
        }])
        .unwrap();
    assert_eq!(
        f.engine
            .decrypt(P, &blob, &none(), None)
            .unwrap()
            .plaintext
            .expose(),
        b"kept"
    );
    // Replicas of unknown HSMs are refused.
    assert!(f
        .engine
        .apply(&[Control::PutReplica {
            hsm: HsmSlot::Hsm(HsmId::generate()),
            key: k,
            material: KeyMaterial::generate(),
        }])
        .is_err());
}

#[test]
fn data_keys_and_random() {
    let f = fixture(1 << 20);
    let c = ctx(&[("a", "b")]);
    for (spec, n, len) in [
        (Some(DataKeySpec::Aes256), None, 32usize),
        (Some(DataKeySpec::Aes128), None, 16),
        (None, Some(1), 1),
        (None, Some(1024), 1024),
    ] {
        let out = f
            .engine
            .generate_data_key(P, &KeyRef::Id(f.k1), spec, n, &c)
            .unwrap();
        let pt = out.plaintext.unwrap();
        assert_eq!(pt.len(), len);
        let back = f.engine.decrypt(P, &out.ciphertext_blob, &c, None).unwrap();
        assert_eq!(back.plaintext.expose(), pt.expose());
        let wp = f
            .engine
            .generate_data_key_without_plaintext(P, &KeyRef::Id(f.dflt), spec, n, &c)
            .unwrap();
        assert!(wp.plaintext.is_none());
        let back = f.engine.decrypt(P, &wp.ciphertext_blob, &c, None).unwrap();
        assert_eq!(back.plaintext.len(), len);
    }
    for (spec, n) in [(None, None), (Some(DataKeySpec::Aes256), Some(32))] {
        let e = f
            .engine
            .generate_data_key(P, &KeyRef::Id(f.k1), spec, n, &c)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValidationException);
        assert_eq!(
            e.message(),
            "Please specify either number of bytes or key spec."
        );
    }
    for n in [0u32, 1025] {
        assert_eq!(
            f.engine
                .generate_data_key(P, &KeyRef::Id(f.k1), None, Some(n), &c)
                .unwrap_err()
                .kind(),
            ErrorKind::ValidationException
        );
        assert_eq!(
            f.engine.generate_random(n, None).unwrap_err().kind(),
            ErrorKind::ValidationException
        );
    }
    let a = f.engine.generate_random(1024, None).unwrap();
    let b = f.engine.generate_random(1024, None).unwrap();
    assert_eq!(a.len(), 1024);
    assert_ne!(a.expose(), b.expose());
    assert_eq!(
        f.engine
            .generate_random(16, Some(std::slice::from_ref(&f.h2)))
            .unwrap()
            .len(),
        16
    );
    let ghost = [HsmSlot::Hsm(HsmId::generate())];
    assert_eq!(
        f.engine
            .generate_random(16, Some(&ghost))
            .unwrap_err()
            .kind(),
        ErrorKind::KMSInvalidStateException
    );
}

#[test]
fn re_encrypt_across_keys_and_shards() {
    let f = fixture(1 << 20);
    let sc = ctx(&[("s", "1")]);
    let dc = ctx(&[("d", "2")]);
    let blob = f
        .engine
        .encrypt(P, &KeyRef::Id(f.k1), b"move me", &sc)
        .unwrap()
        .ciphertext_blob;
    let out = f
        .engine
        .re_encrypt(
            P,
            &blob,
            &sc,
            Some(&KeyRef::Id(f.k1)),
            &KeyRef::Id(f.k2),
            &dc,
        )
        .unwrap();
    assert_eq!(&*out.source_key_arn, f.scope.key_arn(&f.k1));
    assert_eq!(&*out.key_arn, f.scope.key_arn(&f.k2));
    let back = f
        .engine
        .decrypt(P, &out.ciphertext_blob, &dc, None)
        .unwrap();
    assert_eq!(back.plaintext.expose(), b"move me");
    assert_eq!(
        f.engine
            .re_encrypt(
                P,
                &blob,
                &sc,
                Some(&KeyRef::Id(f.k2)),
                &KeyRef::Id(f.k2),
                &dc
            )
            .unwrap_err()
            .kind(),
        ErrorKind::IncorrectKeyException
    );
    assert_eq!(
        f.engine
            .re_encrypt(P, &blob, &dc, None, &KeyRef::Id(f.k2), &dc)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidCiphertextException
    );
}

#[test]
fn subkey_rollover_keeps_every_blob_decryptable() {
    let f = fixture(4);
    let mut blobs = Vec::new();
    for i in 0..40u32 {
        let key = if i % 2 == 0 { f.k1 } else { f.dflt };
        let pt = i.to_le_bytes();
        let b = f
            .engine
            .encrypt(P, &KeyRef::Id(key), &pt, &none())
            .unwrap()
            .ciphertext_blob;
        blobs.push((pt, b));
    }
    // Salts change every 4 seals (bytes 17..33 of the header).
    let salts: std::collections::HashSet<_> =
        blobs.iter().map(|(_, b)| b[17..33].to_vec()).collect();
    assert!(salts.len() >= 10, "only {} salts", salts.len());
    for (pt, b) in &blobs {
        assert_eq!(
            f.engine
                .decrypt(P, b, &none(), None)
                .unwrap()
                .plaintext
                .expose(),
            pt
        );
    }
}

#[test]
fn batches_answer_per_item_in_order() {
    let f = fixture(1 << 20);
    let keys = [
        KeyRef::Id(f.k1),
        KeyRef::Id(f.k2),
        KeyRef::Id(f.dflt),
        KeyRef::Id(KeyId::generate()),
    ];
    let c = none();
    let pts: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_le_bytes().to_vec()).collect();
    let items: Vec<EncryptItem<'_>> = pts
        .iter()
        .enumerate()
        .map(|(i, p)| EncryptItem {
            key: keys[i % 4].as_name(),
            plaintext: if i == 5 { &[] } else { p },
            context: &c,
        })
        .collect();
    let out = f.engine.encrypt_batch(P, &items);
    assert_eq!(out.len(), 200);
    let mut blobs = Vec::new();
    for (i, r) in out.iter().enumerate() {
        match (i % 4, i) {
            (_, 5) => assert_eq!(
                r.as_ref().unwrap_err().kind(),
                ErrorKind::ValidationException
            ),
            (3, _) => assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::NotFoundException),
            _ => blobs.push((i, r.as_ref().unwrap().ciphertext_blob.clone())),
        }
    }
    let ditems: Vec<DecryptItem<'_>> = blobs
        .iter()
        .map(|(_, b)| DecryptItem {
            ciphertext: b,
            context: &c,
            key: None,
        })
        .collect();
    for ((i, _), r) in blobs.iter().zip(f.engine.decrypt_batch(P, &ditems)) {
        assert_eq!(r.unwrap().plaintext.expose(), &pts[*i][..]);
    }
    let gitems: Vec<DataKeyItem<'_>> = (0..100)
        .map(|i| DataKeyItem {
            key: keys[i % 3].as_name(),
            key_spec: if i == 7 {
                None
            } else {
                Some(DataKeySpec::Aes256)
            },
            number_of_bytes: None,
            context: &c,
        })
        .collect();
    let g = f.engine.generate_data_key_batch(P, &gitems, true);
    for (i, r) in g.iter().enumerate() {
        if i == 7 {
            assert_eq!(
                r.as_ref().unwrap_err().kind(),
                ErrorKind::ValidationException
            );
        } else {
            let dk = r.as_ref().unwrap();
            assert_eq!(dk.plaintext.as_ref().unwrap().len(), 32);
            assert_eq!(&*dk.key_arn, f.scope.key_arn(keys[i % 3].id()));
        }
    }
    assert!(f.engine.encrypt_batch(P, &[]).is_empty());
}

#[test]
fn a_batch_in_runs_of_keys_on_different_shards_answers_each_item_under_its_key() {
    let f = fixture(1 << 20);
    // Runs of one key (as a batch usually is), each held on other shards: a split batch looks
    // placement up once per run, and every item must still reach its key.
    let run = |key: KeyId, n: usize| std::iter::repeat_n(key, n);
    let order: Vec<KeyId> = run(f.k1, 40)
        .chain(run(f.k2, 40))
        .chain(run(f.dflt, 40))
        .chain(run(f.k1, 1))
        .chain(run(f.k2, 1))
        .collect();
    let refs: Vec<KeyRef> = order.iter().map(|&k| KeyRef::Id(k)).collect();
    let c = none();
    let items: Vec<DataKeyItem<'_>> = refs
        .iter()
        .map(|k| DataKeyItem {
            key: k.as_name(),
            key_spec: Some(DataKeySpec::Aes256),
            number_of_bytes: None,
            context: &c,
        })
        .collect();
    for _ in 0..20 {
        let g = f.engine.generate_data_key_batch(P, &items, true);
        assert_eq!(g.len(), order.len());
        for (key, r) in order.iter().zip(&g) {
            assert_eq!(&*r.as_ref().unwrap().key_arn, f.scope.key_arn(key));
        }
    }
}

/// One data-key batch item naming `key` with `context`, `bytes` long.
fn data_key_item<'a>(
    key: &'a KeyRef,
    bytes: u32,
    context: &'a EncryptionContext,
) -> DataKeyItem<'a> {
    DataKeyItem {
        key: key.as_name(),
        key_spec: None,
        number_of_bytes: Some(bytes),
        context,
    }
}

#[test]
fn a_run_of_data_keys_on_one_key_seals_each_under_its_own_nonce_and_context_across_epochs() {
    // Not split, on a key every shard holds: the whole batch is one run on the caller's
    // shard, whose epochs (3 seals each) roll over inside it.
    let f = fixture_with(3, SEAL_CACHE, false);
    let key = KeyRef::Id(f.dflt);
    let contexts = [none(), ctx(&[("purpose", "a")]), ctx(&[("purpose", "b")])];
    let items: Vec<DataKeyItem<'_>> = (0..60)
        .map(|i| data_key_item(&key, 1 + i as u32 % 64, &contexts[i % 3]))
        .collect();
    for with_plaintext in [true, false] {
        let out = f.engine.generate_data_key_batch(P, &items, with_plaintext);
        assert_eq!(out.len(), items.len());
        let mut seals = std::collections::HashSet::new();
        for (i, r) in out.iter().enumerate() {
            let dk = r.as_ref().unwrap();
            assert_eq!(&*dk.key_arn, f.scope.key_arn(&f.dflt));
            // Salt and nonce: bytes 17..45 of the header.
            assert!(
                seals.insert(dk.ciphertext_blob[17..45].to_vec()),
                "item {i}"
            );
            let opened = f
                .engine
                .decrypt(P, &dk.ciphertext_blob, &contexts[i % 3], None)
                .unwrap();
            assert_eq!(opened.plaintext.len(), 1 + i % 64, "item {i}");
            match &dk.plaintext {
                Some(p) => assert_eq!(p.expose(), opened.plaintext.expose(), "item {i}"),
                None => assert!(!with_plaintext),
            }
            let other = &contexts[(i + 1) % 3];
            let wrong = f.engine.decrypt(P, &dk.ciphertext_blob, other, None);
            assert_eq!(
                wrong.unwrap_err().kind(),
                ErrorKind::InvalidCiphertextException
            );
        }
        let salts: std::collections::HashSet<_> = seals.iter().map(|s| s[..16].to_vec()).collect();
        assert_eq!(salts.len(), items.len() / 3, "an epoch of 3 seals each");
    }
}

#[test]
fn a_run_ends_where_the_named_key_changes_and_each_item_answers_under_its_own_key() {
    // Keys every shard holds (the default store's), so that every run is on the caller's
    // shard: `dflt`, another, `dflt` by an alias, an unknown key, one whose policy refuses.
    let f = fixture_with(1 << 20, SEAL_CACHE, false);
    let other = open_default_key(&f);
    f.engine
        .apply(&[Control::PutAlias {
            alias: "alias/dflt".into(),
            key: f.dflt,
        }])
        .unwrap();
    let (dflt, second, alias) = (
        KeyRef::Id(f.dflt),
        KeyRef::Id(other),
        KeyRef::Alias("alias/dflt".into()),
    );
    let (unknown, closed) = (
        KeyRef::Id(KeyId::generate()),
        KeyRef::Id(closed_policy_key(&f)),
    );
    let c = none();
    let plan: Vec<(&KeyRef, usize)> = vec![
        (&dflt, 10),
        (&second, 5),
        (&dflt, 1),
        (&alias, 5),
        (&unknown, 3),
        (&dflt, 4),
        (&closed, 3),
        (&dflt, 2),
    ];
    let keys: Vec<&KeyRef> = plan
        .iter()
        .flat_map(|(k, n)| std::iter::repeat_n(*k, *n))
        .collect();
    let items: Vec<DataKeyItem<'_>> = keys.iter().map(|k| data_key_item(k, 32, &c)).collect();
    let out = f.engine.generate_data_key_batch(P, &items, true);
    assert_eq!(out.len(), keys.len());
    for (i, (key, r)) in keys.iter().zip(&out).enumerate() {
        let expect = |id: &KeyId| {
            let dk = r.as_ref().unwrap();
            assert_eq!(&*dk.key_arn, f.scope.key_arn(id), "item {i}");
            let opened = f.engine.decrypt(P, &dk.ciphertext_blob, &c, None).unwrap();
            assert_eq!(
                opened.plaintext.expose(),
                dk.plaintext.as_ref().unwrap().expose()
            );
        };
        if std::ptr::eq(*key, &unknown) {
            assert_eq!(r.as_ref().unwrap_err().kind(), ErrorKind::NotFoundException);
        } else if std::ptr::eq(*key, &closed) {
            let e = r.as_ref().unwrap_err().kind();
            assert_eq!(e, ErrorKind::AccessDeniedException, "item {i}");
        } else if std::ptr::eq(*key, &second) {
            expect(&other);
        } else {
            expect(&f.dflt);
        }
    }
}

#[test]
fn a_run_under_a_context_bound_grant_admits_each_item_by_its_own_context() {
    // The policy refuses; a grant allows only under {"a": "b"}. Its verdict depends on each
    // item's context, so items of one key in a row must not share the first one's.
    let f = fixture_with(1 << 20, SEAL_CACHE, false);
    let k = closed_policy_key(&f);
    f.engine
        .apply(&[put_grant(
            k,
            "g",
            &[Action::GenerateDataKey],
            Some(ctx(&[("a", "b")])),
        )])
        .unwrap();
    let key = KeyRef::Id(k);
    let (granted, other) = (ctx(&[("a", "b")]), ctx(&[("a", "x")]));
    let items: Vec<DataKeyItem<'_>> = (0..12)
        .map(|i| data_key_item(&key, 32, if i % 3 == 2 { &other } else { &granted }))
        .collect();
    let out = f.engine.generate_data_key_batch(P, &items, true);
    for (i, r) in out.iter().enumerate() {
        if i % 3 == 2 {
            let e = r.as_ref().unwrap_err().kind();
            assert_eq!(e, ErrorKind::AccessDeniedException, "item {i}");
        } else {
            assert_eq!(
                &*r.as_ref().unwrap().key_arn,
                f.scope.key_arn(&k),
                "item {i}"
            );
        }
    }
}

#[test]
fn a_run_on_a_key_with_no_sealing_context_kept_answers_every_item() {
    // No room to keep any key's expanded context: every seal expands its subkey for itself
    // and owes the cache's clock a step, which ends each run after its item.
    let f = fixture_with(2, 0, false);
    let key = KeyRef::Id(f.dflt);
    let c = none();
    let items: Vec<DataKeyItem<'_>> = (0..20).map(|_| data_key_item(&key, 32, &c)).collect();
    for _ in 0..3 {
        for r in f.engine.generate_data_key_batch(P, &items, true) {
            let dk = r.unwrap();
            let opened = f.engine.decrypt(P, &dk.ciphertext_blob, &c, None).unwrap();
            assert_eq!(opened.plaintext.expose(), dk.plaintext.unwrap().expose());
        }
    }
}

trait IdOf {
    fn id(&self) -> &KeyId;
}
impl IdOf for KeyRef {
    fn id(&self) -> &KeyId {
        match self {
            KeyRef::Id(id) => id,
            KeyRef::Alias(_) => panic!("alias"),
        }
    }
}

/// Runs `f` on a thread and fails the test if it does not finish in `limit` (a hang).
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).expect("operation hung")
}

#[test]
fn concurrent_mixed_ops_under_control_changes() {
    let f = fixture(16);
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    // Calls each caller has finished: after each control change the test waits until every
    // caller has finished two more, so at least one call of each ran wholly under that state.
    let calls: Arc<Vec<AtomicUsize>> = Arc::new((0..4).map(|_| AtomicUsize::new(0)).collect());
    let mut threads = Vec::new();
    for t in 0..4usize {
        let engine = f.engine.clone();
        let (stop, ok, calls) = (stop.clone(), ok.clone(), calls.clone());
        let keys = [f.k1, f.k2, f.dflt];
        threads.push(thread::spawn(move || {
            let c = none();
            let mut i = 0usize;
            let mut blobs: Vec<Vec<u8>> = Vec::new();
            while !stop.load(Ordering::Relaxed) || i < 200 {
                i += 1;
                let key = KeyRef::Id(keys[(i + t) % 3]);
                let r: Result<(), kmscks::KmsError> = match i % 5 {
                    0 => engine.encrypt(P, &key, b"abc", &c).map(|o| {
                        if blobs.len() < 64 {
                            blobs.push(o.ciphertext_blob)
                        }
                    }),
                    1 => match blobs.get(i % blobs.len().max(1)) {
                        Some(b) => engine.decrypt(P, b, &c, None).map(|o| {
                            assert_eq!(o.plaintext.expose(), b"abc");
                        }),
                        None => Ok(()),
                    },
                    2 => engine
                        .generate_data_key(P, &key, Some(DataKeySpec::Aes256), None, &c)
                        .map(|_| ()),
                    3 => {
                        let items: Vec<_> = (0..20)
                            .map(|_| EncryptItem {
                                key: key.as_name(),
                                plaintext: b"batch",
                                context: &c,
                            })
                            .collect();
                        engine
                            .encrypt_batch(P, &items)
                            .into_iter()
                            .collect::<Result<Vec<_>, _>>()
                            .map(|_| ())
                    }
                    _ => engine.generate_random(32, None).map(|_| ()),
                };
                calls[t].fetch_add(1, Ordering::Release);
                match r {
                    Ok(()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => assert!(
                        matches!(
                            e.kind(),
                            ErrorKind::DisabledException | ErrorKind::KMSInvalidStateException
                        ),
                        "unexpected {e}"
                    ),
                }
            }
        }));
    }
    let engine = f.engine.clone();
    let (k1, h1, scope) = (f.k1, f.h1.clone(), f.scope.clone());
    let m1 = f.m1.duplicate();
    let every_caller_ran = move || {
        let start: Vec<usize> = calls.iter().map(|c| c.load(Ordering::Acquire)).collect();
        support::wait_until(
            "every caller to finish two calls under the new control state",
            Duration::from_secs(30),
            || (calls.iter().zip(&start)).all(|(c, s)| c.load(Ordering::Acquire) >= s + 2),
        );
    };
    within(Duration::from_secs(60), move || {
        for _ in 0..30 {
            let arn = scope.key_arn(&k1);
            engine
                .apply(&[Control::SetGate {
                    key: k1,
                    gate: Gate::Closed(err!(DisabledException, "{arn} is disabled.")),
                }])
                .unwrap();
            every_caller_ran();
            engine
                .apply(&[
                    Control::SetGate {
                        key: k1,
                        gate: Gate::Open,
                    },
                    Control::RemoveHsm { hsm: h1.clone() },
                ])
                .unwrap();
            every_caller_ran();
            engine
                .apply(&[
                    Control::AddHsm { hsm: h1.clone() },
                    Control::PutReplica {
                        hsm: h1.clone(),
                        key: k1,
                        material: m1.duplicate(),
                    },
                ])
                .unwrap();
            every_caller_ran();
        }
    });
    stop.store(true, Ordering::Relaxed);
    within(Duration::from_secs(60), move || {
        for t in threads {
            t.join().unwrap();
        }
    });
    assert!(ok.load(Ordering::Relaxed) > 100);
}

/// An authorizer that holds every request reaching it until opened. The engine asks the
/// authorizer on the caller's thread under the shard's lock, so a held request is provably in
/// flight and its shard provably busy: "callers in flight" becomes a state the test observes,
/// not a moment it hopes to hit.
#[derive(Default)]
struct Latch {
    /// (requests held so far, open).
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Latch {
    /// Waits until `n` requests have reached the latch; panics after `limit`.
    fn wait_held(&self, n: usize, limit: Duration) {
        let g = self.state.lock().expect("latch lock (no holder panics)");
        let (g, timeout) = self
            .changed
            .wait_timeout_while(g, limit, |(held, _)| *held < n)
            .expect("latch lock (no holder panics)");
        assert!(!timeout.timed_out(), "only {} of {n} requests held", g.0);
    }

    fn held(&self) -> usize {
        self.state.lock().expect("latch lock (no holder panics)").0
    }

    fn open(&self) {
        self.state.lock().expect("latch lock (no holder panics)").1 = true;
        self.changed.notify_all();
    }
}

impl Authorizer for Latch {
    fn allows(&self, _principal: &str, _action: Action, _key: &KeyId) -> bool {
        let mut g = self.state.lock().expect("latch lock (no holder panics)");
        g.0 += 1;
        self.changed.notify_all();
        // Bounded, so a failing test cannot leave a caller parked forever; the test's own
        // waits are far shorter and fail first.
        let _ = self
            .changed
            .wait_timeout_while(g, Duration::from_secs(120), |(_, open)| !*open)
            .expect("latch lock (no holder panics)");
        true
    }
}

#[test]
fn shutdown_with_callers_in_flight_returns_errors() {
    let f = fixture(1 << 20);
    let latch = Arc::new(Latch::default());
    let held = KeyId::generate();
    f.engine
        .apply(&[
            Control::PutKey {
                key: held,
                gate: Gate::Open,
                authorizer: latch.clone(),
            },
            Control::PutReplica {
                hsm: HsmSlot::Default,
                key: held,
                material: KeyMaterial::generate(),
            },
        ])
        .unwrap();
    let shards = f.engine.shards();
    let limit = Duration::from_secs(30);

    // One caller per shard, each held inside its request while holding that shard's lock.
    // Each returns (the held call, the call it makes after being released).
    let inline: Vec<_> = (0..shards)
        .map(|_| {
            let engine = f.engine.clone();
            thread::spawn(move || {
                let key = KeyRef::Id(held);
                let first = engine.encrypt(P, &key, b"x", &none()).map(|_| ());
                let then = engine.encrypt(P, &key, b"x", &none()).map(|_| ());
                (first, then)
            })
        })
        .collect();
    latch.wait_held(shards, limit);
    assert_eq!(f.engine.queued_jobs(), 0);

    // Every shard is busy now: these callers' requests (a single call and two batches) wait in
    // shard queues. Each returns every result it got.
    let mut queued: Vec<thread::JoinHandle<Vec<kmscks::Result<()>>>> = Vec::new();
    {
        let engine = f.engine.clone();
        queued.push(thread::spawn(move || {
            vec![engine
                .encrypt(P, &KeyRef::Id(held), b"x", &none())
                .map(|_| ())]
        }));
    }
    for _ in 0..2 {
        let engine = f.engine.clone();
        queued.push(thread::spawn(move || {
            let key = KeyRef::Id(held);
            let c = none();
            let items: Vec<_> = (0..64)
                .map(|_| DataKeyItem {
                    key: key.as_name(),
                    key_spec: Some(DataKeySpec::Aes256),
                    number_of_bytes: None,
                    context: &c,
                })
                .collect();
            engine
                .generate_data_key_batch(P, &items, true)
                .into_iter()
                .map(|r| r.map(|_| ()))
                .collect()
        }));
    }
    let want = queued.len();
    let engine = f.engine.clone();
    support::wait_until(
        "the queued callers' jobs in the shard queues",
        limit,
        || engine.queued_jobs() == want,
    );
    assert_eq!(latch.held(), shards, "no queued job ran");

    // Shut down with all of them in flight.
    let engine = f.engine.clone();
    within(limit, move || engine.shutdown());
    assert!(f.engine.is_shut_down());

    // Queued requests answer KMSInternalException (while the inline ones are still held).
    let results = within(limit, move || {
        queued
            .into_iter()
            .flat_map(|t| t.join().expect("a queued caller panicked"))
            .collect::<Vec<_>>()
    });
    assert_eq!(results.len(), 1 + 2 * 64);
    for r in results {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::KMSInternalException);
    }
    assert_eq!(f.engine.queued_jobs(), 0);

    // Requests already running inline finish; their callers' next requests fail.
    latch.open();
    let answers = within(limit, move || {
        inline
            .into_iter()
            .map(|t| t.join().expect("an inline caller panicked"))
            .collect::<Vec<_>>()
    });
    for (first, then) in answers {
        assert!(first.is_ok(), "the held request finishes: {first:?}");
        assert_eq!(then.unwrap_err().kind(), ErrorKind::KMSInternalException);
    }
    assert_eq!(
        f.engine.generate_random(8, None).unwrap_err().kind(),
        ErrorKind::KMSInternalException
    );
    assert!(f.engine.apply(&[]).is_err());
}

/// A key whose policy allows everyone, on every shard.
fn open_default_key(f: &Fixture) -> KeyId {
    let id = KeyId::generate();
    f.engine
        .apply(&[
            put_key(id),
            Control::PutReplica {
                hsm: HsmSlot::Default,
                key: id,
                material: KeyMaterial::generate(),
            },
        ])
        .unwrap();
    id
}

/// A key whose policy allows no one, on every shard.
fn closed_policy_key(f: &Fixture) -> KeyId {
    let id = KeyId::generate();
    f.engine
        .apply(&[
            Control::PutKey {
                key: id,
                gate: Gate::Open,
                authorizer: Arc::new(|_: &str, _: Action| false),
            },
            Control::PutReplica {
                hsm: HsmSlot::Default,
                key: id,
                material: KeyMaterial::generate(),
            },
        ])
        .unwrap();
    id
}

fn put_grant(
    key: KeyId,
    id: &str,
    actions: &[Action],
    subset: Option<EncryptionContext>,
) -> Control {
    Control::PutGrant {
        key,
        id: id.into(),
        grant: Arc::new(EngineGrant {
            grantee: P.into(),
            actions: actions.iter().fold(ActionSet::default(), |s, a| s.with(*a)),
            constraints: subset.map(|s| kmscks::types::GrantConstraints {
                encryption_context_subset: Some(s),
                encryption_context_equals: None,
            }),
        }),
    }
}

#[test]
fn a_grant_allows_its_grantee_its_actions_under_its_constraints_until_it_is_removed() {
    let f = fixture(1 << 20);
    let k = closed_policy_key(&f);
    let key = KeyRef::Id(k);
    let denied = |r: Result<EncryptOutput, kmscks::KmsError>| {
        assert_eq!(r.unwrap_err().kind(), ErrorKind::AccessDeniedException)
    };
    denied(f.engine.encrypt(P, &key, b"x", &none()));
    f.engine
        .apply(&[put_grant(
            k,
            "g1",
            &[Action::Encrypt],
            Some(ctx(&[("a", "b")])),
        )])
        .unwrap();
    let blob = f
        .engine
        .encrypt(P, &key, b"x", &ctx(&[("a", "b"), ("c", "d")]))
        .unwrap()
        .ciphertext_blob;
    denied(f.engine.encrypt(P, &key, b"x", &ctx(&[("a", "x")])));
    denied(f.engine.encrypt(
        "arn:aws:iam::111122223333:user/bob",
        &key,
        b"x",
        &ctx(&[("a", "b")]),
    ));
    // Decrypt is not among its actions.
    let dec = f
        .engine
        .decrypt(P, &blob, &ctx(&[("a", "b"), ("c", "d")]), None);
    assert_eq!(dec.unwrap_err().kind(), ErrorKind::AccessDeniedException);

    f.engine
        .apply(&[Control::RemoveGrant {
            key: k,
            id: "g1".into(),
        }])
        .unwrap();
    denied(f.engine.encrypt(P, &key, b"x", &ctx(&[("a", "b")])));
}

#[test]
fn a_grant_on_an_unknown_key_refuses_its_whole_batch() {
    let f = fixture(1 << 20);
    let fresh = KeyId::generate();
    let r = f.engine.apply(&[
        put_key(fresh),
        put_grant(KeyId::generate(), "g", &[Action::Encrypt], None),
    ]);
    assert_eq!(r.unwrap_err().kind(), ErrorKind::NotFoundException);
    let e = f.engine.encrypt(P, &KeyRef::Id(fresh), b"x", &none());
    assert_eq!(
        e.unwrap_err().kind(),
        ErrorKind::NotFoundException,
        "nothing applied"
    );
}

#[test]
fn a_rotated_key_seals_with_its_newest_version_and_opens_every_version_it_holds() {
    let f = fixture(4); // epochs roll over every 4 seals: old blobs come from several salts
    let key = KeyId::generate();
    let [m0, m1, m2] = [(); 3].map(|_| KeyMaterial::generate());
    f.engine
        .apply(&[
            put_key(key),
            Control::PutReplica {
                hsm: HsmSlot::Default,
                key,
                material: m0.duplicate(),
            },
        ])
        .unwrap();
    let seal = |n: u8| {
        let b = f
            .engine
            .encrypt(P, &KeyRef::Id(key), &[n], &none())
            .unwrap()
            .ciphertext_blob;
        (n, b)
    };
    let version = |b: &[u8]| u32::from_be_bytes(b[33..37].try_into().unwrap());
    let opens = |(n, b): &(u8, Vec<u8>)| {
        f.engine
            .decrypt(P, b, &none(), None)
            .map(|p| assert_eq!(p.plaintext.expose(), &[*n]))
    };
    let versions =
        |newest: u32, current: &KeyMaterial, older: &[(u32, &KeyMaterial)]| Control::PutVersions {
            key,
            versions: Arc::new(KeyVersions {
                newest,
                current: current.duplicate(),
                older: older.iter().map(|(v, m)| (*v, m.duplicate())).collect(),
            }),
        };
    let v0: Vec<_> = (0..10).map(seal).collect();
    assert!(v0.iter().all(|(_, b)| version(b) == 0));

    f.engine.apply(&[versions(1, &m1, &[(0, &m0)])]).unwrap();
    let v1: Vec<_> = (10..20).map(seal).collect();
    assert!(v1.iter().all(|(_, b)| version(b) == 1));
    f.engine
        .apply(&[versions(2, &m2, &[(0, &m0), (1, &m1)])])
        .unwrap();
    let v2: Vec<_> = (20..30).map(seal).collect();
    assert!(v2.iter().all(|(_, b)| version(b) == 2));
    for blob in v0.iter().chain(&v1).chain(&v2) {
        opens(blob).unwrap();
    }

    // A blob naming a version the key does not hold, or another version than it was sealed
    // with, is a damaged blob, whether or not its salt's subkey is cached.
    for (n, b) in v1.iter().chain(&v2) {
        for forged_version in [0u32, 1, 2, 3, u32::MAX] {
            if forged_version == version(b) {
                continue;
            }
            let mut forged = b.clone();
            forged[33..37].copy_from_slice(&forged_version.to_be_bytes());
            let e = opens(&(*n, forged)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidCiphertextException, "{e}");
        }
    }

    // The control names a key that must exist: a batch with one for an unknown key is refused
    // whole.
    let unknown = Control::PutVersions {
        key: KeyId::generate(),
        versions: Arc::new(KeyVersions {
            newest: 1,
            current: KeyMaterial::generate(),
            older: Vec::new(),
        }),
    };
    let e = f
        .engine
        .apply(&[versions(3, &KeyMaterial::generate(), &[]), unknown])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFoundException, "{e}");
    assert_eq!(version(&seal(30).1), 2, "the refused batch changed nothing");

    // A key that never rotated still seals version 0 beside the rotated one.
    let out = f
        .engine
        .encrypt(P, &KeyRef::Id(f.dflt), &[1], &none())
        .unwrap();
    assert_eq!(version(&out.ciphertext_blob), 0);
}
