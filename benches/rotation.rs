//! What rotation costs a data-plane request, as ratios in one criterion group: a 32-byte
//! Encrypt and Decrypt on a default-store key that never rotated (the baseline: how every such
//! key is served), and on a key that rotated five times — sealing with its newest version,
//! opening a blob of the newest version (the current epoch) and one of its first version (a
//! cached subkey of an older version).

mod support;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kmscks::engine::*;
use kmscks::secret::KeyMaterial;
use kmscks::types::{KeyId, KeyRef};

const CALLER: &str = "arn:aws:iam::111122223333:user/uid-1001";

/// A default-store key allowing `CALLER`; with `rotations` material versions after its first.
fn key(engine: &Engine, rotations: u32) -> KeyRef {
    let key = KeyId::generate();
    let first = KeyMaterial::generate();
    let mut controls = vec![
        Control::PutKey {
            key,
            gate: Gate::Open,
            authorizer: Arc::new(|p: &str, _: Action| p == CALLER),
        },
        Control::PutReplica {
            hsm: HsmSlot::Default,
            key,
            material: first.duplicate(),
        },
    ];
    if rotations > 0 {
        let mut older = vec![(0, first)];
        older.extend((1..rotations).map(|v| (v, KeyMaterial::generate())));
        controls.push(Control::PutVersions {
            key,
            versions: Arc::new(KeyVersions {
                newest: rotations,
                current: KeyMaterial::generate(),
                older,
            }),
        });
    }
    engine.apply(&controls).unwrap();
    KeyRef::Id(key)
}

fn bench(c: &mut Criterion) {
    let engine = support::one_shard_engine();
    let ctx = EncryptionContext::new();
    let plain = key(&engine, 0);
    let seal = |k: &KeyRef| {
        engine
            .encrypt(CALLER, k, &[7u8; 32], &ctx)
            .unwrap()
            .ciphertext_blob
    };
    let plain_blob = seal(&plain);
    // The rotated key's first-version blob is sealed before its rotations reach the engine.
    let rotated_id = KeyId::generate();
    let first = KeyMaterial::generate();
    engine
        .apply(&[
            Control::PutKey {
                key: rotated_id,
                gate: Gate::Open,
                authorizer: Arc::new(|p: &str, _: Action| p == CALLER),
            },
            Control::PutReplica {
                hsm: HsmSlot::Default,
                key: rotated_id,
                material: first.duplicate(),
            },
        ])
        .unwrap();
    let rotated = KeyRef::Id(rotated_id);
    let old_blob = seal(&rotated);
    let mut older = vec![(0, first)];
    older.extend((1..5).map(|v| (v, KeyMaterial::generate())));
    engine
        .apply(&[Control::PutVersions {
            key: rotated_id,
            versions: Arc::new(KeyVersions {
                newest: 5,
                current: KeyMaterial::generate(),
                older,
            }),
        }])
        .unwrap();
    let new_blob = seal(&rotated);
    let also_rotated = key(&engine, 5);

    let mut g = c.benchmark_group("32 B on a default-store key: rotated or not");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encrypt, never rotated", |b| b.iter(|| seal(&plain)));
    g.bench_function("encrypt, rotated 5 times", |b| {
        b.iter(|| seal(&also_rotated))
    });
    let open = |blob: &[u8]| engine.decrypt(CALLER, blob, &ctx, None).unwrap();
    g.bench_function("decrypt, never rotated", |b| b.iter(|| open(&plain_blob)));
    g.bench_function("decrypt, rotated, newest version", |b| {
        b.iter(|| open(&new_blob))
    });
    g.bench_function("decrypt, rotated, first version", |b| {
        b.iter(|| open(&old_blob))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
