//! White-box tests: the queued hand-off path and the liveness guard.

use crate::secret::KeyMaterial;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::error::ErrorKind;
use crate::types::KeyId;

fn one_shard_engine() -> (Arc<Engine>, KeyId) {
    let engine = Engine::new(EngineConfig {
        shards: 1,
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
                arn: Arc::from("arn:aws:kms:us-east-1:111122223333:key/x"),
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

#[test]
fn a_poisoned_shard_answers_errors_instead_of_hanging() {
    let (engine, k) = one_shard_engine();
    let e2 = engine.clone();
    let _ = std::thread::spawn(move || {
        let _g = e2.inner.shards[0].state.lock().unwrap();
        panic!("simulated worker failure while holding the shard");
    })
    .join();
    let (tx, rx) = std::sync::mpsc::channel();
    let e3 = engine.clone();
    std::thread::spawn(move || {
        let _ = tx.send(e3.encrypt("p", &KeyRef::Id(k), b"x", &EncryptionContext::new()));
    });
    let r = rx.recv_timeout(Duration::from_secs(20)).expect("hung");
    assert_eq!(r.unwrap_err().kind(), ErrorKind::KMSInternalException);
    assert!(engine.inner.shards[0].dead_for_test());
    assert!(engine.apply(&[]).is_err());
}

#[test]
fn control_debug_redacts_material() {
    let c = Control::PutReplica {
        hsm: HsmSlot::Default,
        key: KeyId::generate(),
        material: KeyMaterial::from_slice(&[0xAB; 32]).unwrap(),
    };
    let s = format!("{c:?}");
    assert!(
        s.contains("<redacted>") && !s.to_lowercase().contains("ab, "),
        "{s}"
    );
    assert_eq!(Action::GenerateDataKey.as_str(), "kms:GenerateDataKey");
}
