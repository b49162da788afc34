//! White-box tests: the queued hand-off path and the liveness guard.

use crate::secret::KeyMaterial;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::error::ErrorKind;
use crate::types::{HsmId, KeyId};

fn one_shard_engine() -> (Arc<Engine>, KeyId) {
    engine_with_one_key(1)
}

/// An engine of `shards` shards holding one default-store key, open to every caller.
fn engine_with_one_key(shards: usize) -> (Arc<Engine>, KeyId) {
    let engine = Engine::new(EngineConfig {
        shards,
        pin_workers: false,
        ..EngineConfig::default()
    })
    .unwrap();
    let k = KeyId::generate();
    engine
        .apply(&[
            Control::AddHsm {
                hsm: HsmSlot::Default,
            },
            Control::PutKey {
                key: k,
                gate: Gate::Open,
                authorizer: Arc::new(AllowAll),
            },
            Control::PutReplica {
                hsm: HsmSlot::Default,
                key: k,
                material: KeyMaterial::generate(),
            },
        ])
        .unwrap();
    (Arc::new(engine), k)
}

#[test]
fn busy_shard_hands_requests_off_and_they_complete() {
    let (engine, k) = one_shard_engine();
    let guard = engine.inner.shards[0].state.lock().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for _ in 0..3 {
        let (e, tx) = (engine.clone(), tx.clone());
        std::thread::spawn(move || {
            let r = e.encrypt("p", &KeyRef::Id(k), b"queued", &EncryptionContext::new());
            let _ = tx.send(r.map(|o| o.ciphertext_blob));
        });
    }
    // Nothing can finish while the shard is held.
    assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
    drop(guard);
    for _ in 0..3 {
        let blob = rx.recv_timeout(Duration::from_secs(20)).unwrap().unwrap();
        let out = engine
            .decrypt("p", &blob, &EncryptionContext::new(), None)
            .unwrap();
        assert_eq!(out.plaintext.expose(), b"queued");
    }
}

/// Fails shard `i` as a panic would: a thread panics while holding its lock, poisoning it.
fn fail_shard(engine: &Arc<Engine>, i: usize) {
    let e = engine.clone();
    let _ = std::thread::spawn(move || {
        let _g = e.inner.shards[i].state.lock().unwrap();
        panic!("simulated failure while holding shard {i}");
    })
    .join();
}

#[test]
fn a_poisoned_shard_answers_errors_instead_of_hanging() {
    let (engine, k) = one_shard_engine();
    fail_shard(&engine, 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let e3 = engine.clone();
    std::thread::spawn(move || {
        let _ = tx.send(e3.encrypt("p", &KeyRef::Id(k), b"x", &EncryptionContext::new()));
    });
    let r = rx.recv_timeout(Duration::from_secs(20)).expect("hung");
    assert_eq!(r.unwrap_err().kind(), ErrorKind::KMSInternalException);
    assert!(engine.inner.shards[0].is_dead());
    assert!(engine.apply(&[]).is_err());
}

#[test]
fn a_revocation_reaches_every_shard_that_serves_when_another_shard_has_failed() {
    let (engine, k) = engine_with_one_key(2);
    // Shard 1 fails: a caller panicked while holding it.
    fail_shard(&engine, 1);
    let encrypt = || engine.encrypt("p", &KeyRef::Id(k), b"x", &EncryptionContext::new());
    // The live shard serves the key; the failed one is marked dead by the next change.
    encrypt().unwrap();
    let disabled = || Gate::Closed(crate::err!(DisabledException, "key is disabled."));
    engine
        .apply(&[Control::SetGate {
            key: k,
            gate: disabled(),
        }])
        .unwrap();
    assert!(engine.inner.shards[1].is_dead());
    assert_eq!(encrypt().unwrap_err().kind(), ErrorKind::DisabledException);
    // A new HSM goes to a live shard, never to a failed one (with none placed yet, both
    // shards are as loaded: the dead one is passed over whichever it is).
    let st = engine.inner.shards[0].state.lock().unwrap();
    assert_eq!(st.least_loaded_shard(0b10), 0);
    assert_eq!(st.least_loaded_shard(0b01), 1);
}

/// Imported material expires at its ValidTo whatever the control plane is doing: the engine
/// reads the clock itself for a key open until a time, and refuses it from that instant.
#[test]
fn a_key_open_until_a_time_serves_before_it_and_is_refused_from_that_instant() {
    use crate::types::{Clock, ManualClock, Timestamp};
    let (engine, k) = engine_with_one_key(2);
    let clock = ManualClock::new(Timestamp(1_000_000));
    let until = clock.now().plus(Duration::from_secs(60));
    let then = crate::err!(KMSInvalidStateException, "key is pending import.");
    engine
        .apply(&[Control::SetGate {
            key: k,
            gate: Gate::OpenUntil(Arc::new(Expiry {
                until,
                clock: Arc::new(clock.clone()),
                then,
            })),
        }])
        .unwrap();
    let encrypt = || engine.encrypt("p", &KeyRef::Id(k), b"x", &EncryptionContext::new());
    encrypt().unwrap();
    clock.advance_millis(59_999);
    encrypt().unwrap();
    clock.advance_millis(1);
    for _ in 0..4 {
        let e = encrypt().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::KMSInvalidStateException, "{e}");
    }
    let e = engine
        .generate_data_key(
            "p",
            &KeyRef::Id(k),
            Some(DataKeySpec::Aes256),
            None,
            &EncryptionContext::new(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::KMSInvalidStateException, "{e}");
    // Opened again (new material), it serves.
    engine
        .apply(&[Control::SetGate {
            key: k,
            gate: Gate::Open,
        }])
        .unwrap();
    encrypt().unwrap();
}

#[test]
fn when_every_shard_has_failed_a_change_is_refused() {
    let (engine, _k) = one_shard_engine();
    fail_shard(&engine, 0);
    let e = engine.apply(&[]).unwrap_err();
    assert!(e.message().contains("every engine shard failed"), "{e}");
}

#[test]
fn control_debug_redacts_material() {
    let c = Control::PutReplica {
        hsm: HsmSlot::Default,
        // A fixed id: a random one could itself print "ab, " (an id ending in "ab"
        // before the next field), which the check below reads as leaked material.
        key: KeyId::from_bytes([0x11; 16]),
        material: KeyMaterial::from_slice(&[0xAB; 32]).unwrap(),
    };
    let s = format!("{c:?}");
    assert!(
        s.contains("<redacted>") && !s.to_lowercase().contains("ab, ") && !s.contains("171"),
        "{s}"
    );
    assert_eq!(Action::GenerateDataKey.as_str(), "kms:GenerateDataKey");
}

#[test]
fn an_encrypt_item_debug_shows_the_plaintext_length_not_its_bytes() {
    let ctx = EncryptionContext::default();
    let item = EncryptItem {
        key: KeyName::Id(KeyId::from_bytes([0x11; 16])),
        plaintext: b"attack at dawn",
        context: &ctx,
    };
    let s = format!("{item:?}");
    assert!(s.contains("plaintext_len: 14"), "{s}");
    assert!(!s.contains("dawn") && !s.contains("97, 116"), "{s}");
}

/// An engine of `shards` shards holding `n` default-store keys, with `seal_cache` live
/// sealing subkeys per shard at most.
fn engine_with_keys(shards: usize, n: usize, seal_cache: usize) -> (Engine, Vec<KeyId>) {
    let engine = Engine::new(EngineConfig {
        shards,
        pin_workers: false,
        seal_cache,
        ..EngineConfig::default()
    })
    .unwrap();
    let keys: Vec<KeyId> = (0..n).map(|_| KeyId::generate()).collect();
    let mut controls = vec![Control::AddHsm {
        hsm: HsmSlot::Default,
    }];
    for k in &keys {
        controls.push(Control::PutKey {
            key: *k,
            gate: Gate::Open,
            authorizer: Arc::new(AllowAll),
        });
        controls.push(Control::PutReplica {
            hsm: HsmSlot::Default,
            key: *k,
            material: KeyMaterial::generate(),
        });
    }
    engine.apply(&controls).unwrap();
    (engine, keys)
}

fn salt_of(engine: &Engine, key: &KeyId) -> [u8; crate::crypto::subkey::SALT_LEN] {
    let out = engine
        .encrypt("p", &KeyRef::Id(*key), b"x", &EncryptionContext::new())
        .unwrap();
    crate::crypto::blob::parse(&out.ciphertext_blob)
        .unwrap()
        .salt
}

#[test]
fn kept_contexts_are_bounded_per_shard_and_a_key_beyond_them_seals_on_in_its_own_epoch() {
    let (engine, keys) = engine_with_keys(1, 12, 4);
    let ctx = EncryptionContext::new();
    let salts: Vec<_> = keys.iter().map(|k| salt_of(&engine, k)).collect();
    let mut blobs = Vec::new();
    for _ in 0..3 {
        for (k, salt) in keys.iter().zip(&salts) {
            // Kept context or not, a key's epoch stays: same salt, and every blob opens.
            assert_eq!(salt_of(&engine, k), *salt);
            let out = engine.encrypt("p", &KeyRef::Id(*k), b"any", &ctx).unwrap();
            blobs.push(out.ciphertext_blob);
        }
    }
    let st = engine.inner.shards[0].state.lock().unwrap();
    assert!(st.kept_contexts() <= 4, "{} kept", st.kept_contexts());
    drop(st);
    for b in &blobs {
        let out = engine.decrypt("p", b, &ctx, None).unwrap();
        assert_eq!(out.plaintext.expose(), b"any");
    }
}

#[test]
fn a_key_in_use_keeps_its_context_through_the_sweep_and_others_blobs_still_decrypt() {
    let (engine, keys) = engine_with_keys(1, 12, 4);
    let ctx = EncryptionContext::new();
    let hot = keys[0];
    let hot_salt = salt_of(&engine, &hot);
    let mut blobs = Vec::new();
    for round in 0..3 {
        for k in &keys[1..] {
            // The hot key is used between every two others: the clock gives it second chances.
            assert_eq!(salt_of(&engine, &hot), hot_salt, "round {round}");
            let out = engine.encrypt("p", &KeyRef::Id(*k), b"cold", &ctx).unwrap();
            blobs.push(out.ciphertext_blob);
        }
    }
    assert!(engine.inner.shards[0]
        .state
        .lock()
        .unwrap()
        .keeps_context(&hot));
    for b in &blobs {
        assert_eq!(
            engine
                .decrypt("p", b, &ctx, None)
                .unwrap()
                .plaintext
                .expose(),
            b"cold"
        );
    }
}

#[test]
fn a_key_put_to_use_once_the_kept_set_is_full_gets_a_context_when_the_clock_frees_one() {
    let (engine, keys) = engine_with_keys(1, 5, 4);
    // Four keys seal once each and fill the kept set; none seals again.
    for k in &keys[..4] {
        salt_of(&engine, k);
    }
    let new = keys[4];
    let kept = |engine: &Engine| {
        engine.inner.shards[0]
            .state
            .lock()
            .unwrap()
            .keeps_context(&new)
    };
    salt_of(&engine, &new);
    assert!(
        !kept(&engine),
        "no room yet: it sealed with a context of its own"
    );
    // Every SWEEP_EVERY-th such seal moves the clock hand one step: the first key it passes
    // was not used since, so its context goes and the next seal keeps one.
    let mut seals = 1;
    while !kept(&engine) {
        assert!(
            seals <= super::shard::SWEEP_EVERY,
            "still no context after {seals} seals"
        );
        salt_of(&engine, &new);
        seals += 1;
    }
    let st = engine.inner.shards[0].state.lock().unwrap();
    assert!(
        !st.keeps_context(&keys[0]),
        "the least recently used lost its context"
    );
    assert_eq!(st.kept_contexts(), 4);
}

#[test]
fn answers_carry_the_arn_written_from_the_engine_scope() {
    let (engine, keys) = engine_with_keys(2, 3, 16);
    let scope = crate::types::Scope::default();
    for k in &keys {
        let out = engine
            .encrypt("p", &KeyRef::Id(*k), b"x", &EncryptionContext::new())
            .unwrap();
        assert_eq!(&*out.key_arn, scope.key_arn(k));
    }
}

#[test]
fn a_bulk_load_is_applied_in_parallel_and_serves_every_key() {
    let (engine, keys) = engine_with_keys(2, PARALLEL_APPLY, 1 << 17);
    assert!(
        2 * keys.len() > PARALLEL_APPLY,
        "the batch took the parallel path"
    );
    for st in engine.inner.shards.iter() {
        assert_eq!(st.state.lock().unwrap().key_count(), keys.len());
    }
    for k in keys.iter().step_by(97) {
        let out = engine
            .encrypt("p", &KeyRef::Id(*k), b"bulk", &EncryptionContext::new())
            .unwrap();
        let back = engine
            .decrypt("p", &out.ciphertext_blob, &EncryptionContext::new(), None)
            .unwrap();
        assert_eq!(back.plaintext.expose(), b"bulk");
    }
}

#[test]
fn planned_targets_place_hsms_as_one_by_one_application_would() {
    let config = EngineConfig {
        shards: 3,
        ..EngineConfig::default()
    };
    let hsms: Vec<HsmSlot> = (0..5).map(|_| HsmSlot::Hsm(HsmId::generate())).collect();
    let controls = vec![
        Control::AddHsm {
            hsm: hsms[0].clone(),
        },
        Control::AddHsm {
            hsm: hsms[1].clone(),
        },
        Control::AddHsm {
            hsm: hsms[0].clone(),
        },
        Control::RemoveHsm {
            hsm: hsms[0].clone(),
        },
        Control::AddHsm {
            hsm: hsms[2].clone(),
        },
        Control::AddHsm {
            hsm: hsms[3].clone(),
        },
        Control::AddHsm {
            hsm: hsms[4].clone(),
        },
    ];
    let mut st = ShardState::new(0, 3, &config);
    let plan = st.plan_targets(&controls, 0);
    for (c, planned) in controls.iter().zip(plan) {
        let target = st.least_loaded_shard(0);
        assert_eq!(target, planned, "{c:?}");
        st.apply(c, target).unwrap();
    }
}

#[test]
fn a_batch_with_an_invalid_control_applies_nothing() {
    let (engine, keys) = engine_with_keys(2, 2, 16);
    let closed = Gate::Closed(crate::err!(DisabledException, "disabled"));
    let batch = [
        Control::SetGate {
            key: keys[0],
            gate: closed,
        },
        Control::PutKey {
            key: KeyId::generate(),
            gate: Gate::Open,
            authorizer: Arc::new(AllowAll),
        },
        // An alias to a key the engine does not know: the batch is refused whole.
        Control::PutAlias {
            alias: "alias/nowhere".into(),
            key: KeyId::generate(),
        },
    ];
    let e = engine.apply(&batch).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFoundException, "{e}");
    // The gate change before the bad control did not happen.
    engine
        .encrypt("p", &KeyRef::Id(keys[0]), b"x", &EncryptionContext::new())
        .unwrap();
    for st in engine.inner.shards.iter() {
        assert_eq!(st.state.lock().unwrap().key_count(), 2);
    }
}

#[test]
fn validation_sees_what_earlier_controls_of_the_batch_add_and_remove() {
    let (engine, keys) = engine_with_keys(1, 1, 16);
    let (k, h) = (KeyId::generate(), HsmSlot::Hsm(HsmId::generate()));
    engine
        .apply(&[
            Control::AddHsm { hsm: h.clone() },
            Control::PutKey {
                key: k,
                gate: Gate::Open,
                authorizer: Arc::new(AllowAll),
            },
            Control::PutReplica {
                hsm: h.clone(),
                key: k,
                material: KeyMaterial::generate(),
            },
        ])
        .unwrap();
    let after_removal = engine.apply(&[
        Control::RemoveKey { key: keys[0] },
        Control::SetGate {
            key: keys[0],
            gate: Gate::Open,
        },
    ]);
    assert_eq!(
        after_removal.unwrap_err().kind(),
        ErrorKind::NotFoundException
    );
    let after_reset = engine.apply(&[
        Control::Reset,
        Control::PutReplica {
            hsm: h,
            key: k,
            material: KeyMaterial::generate(),
        },
    ]);
    assert_eq!(
        after_reset.unwrap_err().kind(),
        ErrorKind::CloudHsmResourceNotFoundException
    );
    // Neither batch applied: both keys still serve.
    for key in [keys[0], k] {
        engine
            .encrypt("p", &KeyRef::Id(key), b"x", &EncryptionContext::new())
            .unwrap();
    }
}

/// A one-shard engine with two HSMs, a key held only by `slow` and one held by both.
fn two_hsm_engine() -> (Engine, HsmId, KeyId, KeyId) {
    let engine = Engine::new(EngineConfig {
        shards: 1,
        pin_workers: false,
        ..EngineConfig::default()
    })
    .unwrap();
    let (slow, fast) = (HsmId::generate(), HsmId::generate());
    let (only_slow, both) = (KeyId::generate(), KeyId::generate());
    let mut controls = vec![
        Control::AddHsm {
            hsm: HsmSlot::Hsm(slow.clone()),
        },
        Control::AddHsm {
            hsm: HsmSlot::Hsm(fast.clone()),
        },
    ];
    for (k, holders) in [(only_slow, vec![&slow]), (both, vec![&slow, &fast])] {
        controls.push(Control::PutKey {
            key: k,
            gate: Gate::Open,
            authorizer: Arc::new(AllowAll),
        });
        let material = KeyMaterial::generate();
        for h in holders {
            controls.push(Control::PutReplica {
                hsm: HsmSlot::Hsm(h.clone()),
                key: k,
                material: material.duplicate(),
            });
        }
    }
    engine.apply(&controls).unwrap();
    (engine, slow, only_slow, both)
}

#[test]
fn a_slow_hsm_slows_only_the_calls_it_serves_and_latency_zero_clears_it() {
    // On a thread that keeps its debts (as the daemon's loop does), so nothing sleeps here.
    std::thread::spawn(|| {
        latency::defer_on_this_thread();
        let (engine, slow, only_slow, both) = two_hsm_engine();
        let ctx = EncryptionContext::new();
        let set = |ms| {
            engine
                .apply(&[Control::SetHsmLatency {
                    hsm: slow.clone(),
                    latency: Duration::from_millis(ms),
                }])
                .unwrap()
        };
        set(250);
        let blob = engine
            .encrypt("p", &KeyRef::Id(only_slow), b"x", &ctx)
            .unwrap()
            .ciphertext_blob;
        assert_eq!(latency::take_owed(), Duration::from_millis(250));
        engine.decrypt("p", &blob, &ctx, None).unwrap();
        assert_eq!(latency::take_owed(), Duration::from_millis(250));
        let items = [DataKeyItem {
            key: KeyName::Id(only_slow),
            key_spec: Some(DataKeySpec::Aes256),
            number_of_bytes: None,
            context: &ctx,
        }];
        assert!(engine.generate_data_key_batch("p", &items, true)[0].is_ok());
        assert_eq!(latency::take_owed(), Duration::from_millis(250));
        // The key the fast HSM holds too is served by the fast one.
        engine.encrypt("p", &KeyRef::Id(both), b"x", &ctx).unwrap();
        assert_eq!(latency::take_owed(), Duration::ZERO);
        // A refused call owes nothing.
        assert!(engine
            .encrypt("p", &KeyRef::Id(KeyId::generate()), b"x", &ctx)
            .is_err());
        assert_eq!(latency::take_owed(), Duration::ZERO);
        set(0);
        engine
            .encrypt("p", &KeyRef::Id(only_slow), b"x", &ctx)
            .unwrap();
        assert_eq!(latency::take_owed(), Duration::ZERO);
    })
    .join()
    .expect("the assertions hold");
}

#[test]
fn every_single_call_a_slow_hsm_serves_sleeps_off_its_latency_before_it_returns() {
    // On a thread of its own that pays its debts (it does not defer them).
    std::thread::spawn(|| {
        let (engine, slow, only_slow, _) = two_hsm_engine();
        let delay = Duration::from_millis(5);
        engine
            .apply(&[Control::SetHsmLatency {
                hsm: slow,
                latency: delay,
            }])
            .unwrap();
        let (key, ctx) = (KeyRef::Id(only_slow), EncryptionContext::new());
        let paid = |what: &str, call: &dyn Fn() -> bool| {
            let t0 = std::time::Instant::now();
            assert!(call(), "{what} answers");
            assert!(t0.elapsed() >= delay, "{what} returned before its latency");
            assert_eq!(latency::take_owed(), Duration::ZERO, "{what} left its debt");
        };
        let blob = engine
            .encrypt("p", &key, b"x", &ctx)
            .unwrap()
            .ciphertext_blob;
        assert_eq!(
            latency::take_owed(),
            Duration::ZERO,
            "Encrypt left its debt"
        );
        paid("Encrypt", &|| engine.encrypt("p", &key, b"x", &ctx).is_ok());
        paid("Decrypt", &|| {
            engine.decrypt("p", &blob, &ctx, None).is_ok()
        });
        // A key pair's private key is sealed only under keys of the default key store, which
        // no (CloudHSM) HSM serves: no latency to pay there.
        paid("GenerateDataKey", &|| {
            let spec = Some(DataKeySpec::Aes256);
            engine
                .generate_data_key("p", &key, spec, None, &ctx)
                .is_ok()
        });
        paid("GenerateDataKeyWithoutPlaintext", &|| {
            let spec = Some(DataKeySpec::Aes256);
            let r = engine.generate_data_key_without_plaintext("p", &key, spec, None, &ctx);
            r.is_ok()
        });
    })
    .join()
    .expect("the assertions hold");
}

#[test]
fn a_slow_hsm_removed_and_added_again_is_fast() {
    std::thread::spawn(|| {
        latency::defer_on_this_thread();
        let (engine, slow, only_slow, _) = two_hsm_engine();
        let material = KeyMaterial::generate();
        engine
            .apply(&[
                Control::SetHsmLatency {
                    hsm: slow.clone(),
                    latency: Duration::from_millis(40),
                },
                Control::RemoveHsm {
                    hsm: HsmSlot::Hsm(slow.clone()),
                },
                Control::AddHsm {
                    hsm: HsmSlot::Hsm(slow.clone()),
                },
                Control::PutReplica {
                    hsm: HsmSlot::Hsm(slow.clone()),
                    key: only_slow,
                    material,
                },
            ])
            .unwrap();
        engine
            .encrypt("p", &KeyRef::Id(only_slow), b"x", &EncryptionContext::new())
            .unwrap();
        assert_eq!(latency::take_owed(), Duration::ZERO);
    })
    .join()
    .expect("the assertions hold");
}

/// A pure authorizer that allows only `principal`, counting the times it is asked.
struct OnlyPrincipal {
    principal: &'static str,
    asked: std::sync::atomic::AtomicUsize,
}

impl Authorizer for OnlyPrincipal {
    fn allows(&self, principal: &str, _action: Action, _key: &KeyId) -> bool {
        self.asked
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        principal == self.principal
    }

    fn is_pure(&self) -> bool {
        true
    }
}

fn put_key(engine: &Engine, k: KeyId, authorizer: Arc<dyn Authorizer>) {
    engine
        .apply(&[Control::PutKey {
            key: k,
            gate: Gate::Open,
            authorizer,
        }])
        .unwrap();
}

#[test]
fn a_remembered_policy_verdict_gives_way_to_the_next_policy_at_once() {
    let (engine, k) = one_shard_engine();
    let ctx = EncryptionContext::new();
    let alice = Arc::new(OnlyPrincipal {
        principal: "alice",
        asked: Default::default(),
    });
    put_key(&engine, k, alice.clone());
    for _ in 0..3 {
        engine.encrypt("alice", &KeyRef::Id(k), b"x", &ctx).unwrap();
    }
    // A pure authorizer is asked once per (caller, action), then remembered.
    assert_eq!(alice.asked.load(std::sync::atomic::Ordering::Relaxed), 1);
    let refused = engine.encrypt("bob", &KeyRef::Id(k), b"x", &ctx);
    assert_eq!(
        refused.unwrap_err().kind(),
        ErrorKind::AccessDeniedException
    );
    // Another caller refused does not let the first one through without asking either.
    engine.encrypt("alice", &KeyRef::Id(k), b"x", &ctx).unwrap();

    // The key's policy changes: alice's remembered verdict must not outlive it.
    put_key(
        &engine,
        k,
        Arc::new(OnlyPrincipal {
            principal: "bob",
            asked: Default::default(),
        }),
    );
    let refused = engine.encrypt("alice", &KeyRef::Id(k), b"x", &ctx);
    assert_eq!(
        refused.unwrap_err().kind(),
        ErrorKind::AccessDeniedException
    );
    let refused = engine.generate_data_key("alice", &KeyRef::Id(k), None, Some(32), &ctx);
    assert_eq!(
        refused.unwrap_err().kind(),
        ErrorKind::AccessDeniedException
    );
    engine.encrypt("bob", &KeyRef::Id(k), b"x", &ctx).unwrap();
}

#[test]
fn an_impure_authorizer_is_asked_on_every_request() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (engine, k) = one_shard_engine();
    let ctx = EncryptionContext::new();
    let open = Arc::new(AtomicBool::new(true));
    let flag = open.clone();
    put_key(
        &engine,
        k,
        Arc::new(move |_: &str, _: Action| flag.load(Ordering::SeqCst)),
    );
    engine.encrypt("p", &KeyRef::Id(k), b"x", &ctx).unwrap();
    open.store(false, Ordering::SeqCst);
    let refused = engine.encrypt("p", &KeyRef::Id(k), b"x", &ctx);
    assert_eq!(
        refused.unwrap_err().kind(),
        ErrorKind::AccessDeniedException
    );
}

/// Sends one run request of `items` data keys of 32 bytes on `key` (as the service sends a
/// batch's items alike) and leaves the answers in the returned batch answer.
fn run_of(
    engine: &Engine,
    principal: &str,
    key: KeyId,
    ctx: &EncryptionContext,
    items: u32,
) -> BatchOut {
    let mut out = BatchOut::new();
    let mut reqs = out.spare_reqs();
    reqs.push(data_key_run_req(KeyName::Id(key), 32, ctx, true, items));
    engine.dispatch_reqs_into(principal, reqs, &mut out);
    out
}

/// Every item of the run `out` answered is a data key sealed under `ctx`, and opens to it.
fn assert_each_opens(engine: &Engine, out: &BatchOut, items: u32, ctx: &EncryptionContext) {
    let mut seen = std::collections::HashSet::new();
    for i in 0..items {
        let v = out.data_key_item(0, i).unwrap();
        let data_key = v.plaintext.expect("with plaintext");
        assert_eq!(data_key.len(), 32);
        let opened = engine.decrypt("p", v.ciphertext_blob, ctx, None).unwrap();
        assert_eq!(opened.plaintext.expose(), data_key, "item {i}");
        assert!(
            seen.insert(data_key.to_vec()),
            "item {i} repeats a data key"
        );
    }
}

#[test]
fn a_run_request_seals_its_items_back_to_back_each_opening_to_its_own_data_key() {
    let (engine, keys) = engine_with_keys(1, 1, 16);
    let ctx: EncryptionContext = [("tenant".to_string(), "7".to_string())].into();
    let out = run_of(&engine, "p", keys[0], &ctx, 5);
    assert_eq!(out.items_answered(0), 5, "one seal loop");
    assert_each_opens(&engine, &out, 5, &ctx);
    // Bound to the run's context.
    let blob = out.data_key_item(0, 3).unwrap().ciphertext_blob;
    assert!(engine
        .decrypt("p", blob, &EncryptionContext::new(), None)
        .is_err());
}

#[test]
fn a_run_request_refused_refuses_each_of_its_items_on_its_own() {
    let (engine, _) = engine_with_keys(1, 1, 16);
    let out = run_of(
        &engine,
        "p",
        KeyId::generate(),
        &EncryptionContext::new(),
        4,
    );
    assert_eq!(
        out.items_answered(0),
        1,
        "the run stopped at its first item"
    );
    for i in 0..4 {
        let e = out.data_key_item(0, i).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFoundException, "item {i}");
    }
}

#[test]
fn a_run_request_admitted_by_a_context_bound_grant_admits_each_item_on_its_own() {
    let (engine, k) = one_shard_engine();
    put_key(&engine, k, Arc::new(|_: &str, _: Action| false));
    let granted: EncryptionContext = [("a".to_string(), "b".to_string())].into();
    engine
        .apply(&[Control::PutGrant {
            key: k,
            id: "g".into(),
            grant: Arc::new(EngineGrant {
                grantee: "p".into(),
                actions: ActionSet::default()
                    .with(Action::GenerateDataKey)
                    .with(Action::Decrypt),
                constraints: Some(crate::types::GrantConstraints {
                    encryption_context_subset: Some(granted.clone()),
                    encryption_context_equals: None,
                }),
            }),
        }])
        .unwrap();
    // The grant's verdict depends on the context, so the memo does not keep it: the run
    // stops after its first item and the others are admitted one by one.
    let out = run_of(&engine, "p", k, &granted, 3);
    assert_eq!(out.items_answered(0), 1);
    assert_each_opens(&engine, &out, 3, &granted);
    let other: EncryptionContext = [("a".to_string(), "x".to_string())].into();
    let out = run_of(&engine, "p", k, &other, 3);
    for i in 0..3 {
        let e = out.data_key_item(0, i).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AccessDeniedException, "item {i}");
    }
}

#[test]
fn a_run_request_on_a_slow_hsm_answers_each_item_owing_the_latency_once() {
    std::thread::spawn(|| {
        latency::defer_on_this_thread();
        let (engine, slow, only_slow, _) = two_hsm_engine();
        engine
            .apply(&[Control::SetHsmLatency {
                hsm: slow.clone(),
                latency: Duration::from_millis(250),
            }])
            .unwrap();
        let out = run_of(&engine, "p", only_slow, &EncryptionContext::new(), 4);
        assert_eq!(out.items_answered(0), 1);
        for i in 0..4 {
            assert!(out.data_key_item(0, i).is_ok(), "item {i}");
        }
        // Items of a batch are served side by side: it owes its slowest item's latency.
        assert_eq!(latency::take_owed(), Duration::from_millis(250));
    })
    .join()
    .expect("the assertions hold");
}

#[test]
fn a_run_request_beyond_the_kept_contexts_steps_the_clock_for_each_of_its_seals() {
    let (engine, keys) = engine_with_keys(1, 5, 4);
    // Four keys fill the kept set; the fifth then seals without a context kept.
    for k in &keys[..4] {
        salt_of(&engine, k);
    }
    let new = keys[4];
    let n = super::shard::SWEEP_EVERY + 1;
    let ctx = EncryptionContext::new();
    let out = run_of(&engine, "p", new, &ctx, n);
    assert_eq!(out.items_answered(0), n, "one seal loop");
    assert_each_opens(&engine, &out, n, &ctx);
    // As many single seals would: every SWEEP_EVERY-th cold seal steps the clock hand, which
    // dropped the oldest context, and a seal after that kept one for this key.
    let st = engine.inner.shards[0].state.lock().unwrap();
    assert!(
        st.keeps_context(&new),
        "the run's seals did not step the clock"
    );
    assert!(!st.keeps_context(&keys[0]));
}

/// How many answers of the last batch in `out` were sealed into its sink by the caller, and
/// how many came back in buffers of their own from another shard's worker. A batch split with
/// another shard has both; one served whole on either side has one kind only.
fn sealed_here_and_there(out: &BatchOut) -> (usize, usize) {
    let here = out
        .results
        .iter()
        .filter(|r| matches!(r, Some(Ok(Resp::Blob(sink::Out::At(_), _)))))
        .count();
    (here, out.len() - here)
}

#[test]
fn a_batch_kept_home_is_never_split_with_an_idle_shard() {
    let (engine, k) = engine_with_one_key(2);
    let ctx = EncryptionContext::new();
    let items: Vec<EncryptItem<'_>> = (0..SPLIT_MIN * 4)
        .map(|_| EncryptItem {
            key: KeyName::Id(k),
            plaintext: b"stays home",
            context: &ctx,
        })
        .collect();
    // A lone caller's batch is split with the idle shard: part of it comes back from there.
    // (Not necessarily the first: the other worker may still hold its shard for a moment.)
    let mut split = BatchOut::new();
    let was_split = (0..200).any(|_| {
        engine.encrypt_batch_into("p", &items, &mut split);
        assert_eq!(split.len(), items.len());
        let (here, there) = sealed_here_and_there(&split);
        here > 0 && there > 0
    });
    assert!(was_split, "no batch of a lone caller was split");
    // Kept home, no batch is split: each is served whole on one shard (the caller's, unless
    // every shard was busy and it was handed over whole).
    let mut home = BatchOut::new();
    home.keep_home();
    for round in 0..200 {
        engine.encrypt_batch_into("p", &items, &mut home);
        assert_eq!(home.len(), items.len());
        let (here, there) = sealed_here_and_there(&home);
        assert!(
            here == 0 || there == 0,
            "round {round}: {here} here, {there} there"
        );
        for i in 0..home.len() {
            let blob = home.encrypt(i).unwrap().ciphertext_blob;
            let out = engine.decrypt("p", blob, &ctx, None).unwrap();
            assert_eq!(out.plaintext.expose(), b"stays home");
        }
    }
}
