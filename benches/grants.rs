//! What a grant costs a data-plane request, as ratios in one criterion group: a 32-byte
//! Encrypt on a key whose policy allows the caller (the baseline: how every key without grants
//! is served), on a key that also holds 100 grants to others (the policy still decides: the
//! grants are never looked at), and through a grant — without constraints, and with an
//! `EncryptionContextSubset` of two pairs checked against a four-pair context.

mod support;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kmscks::engine::*;
use kmscks::secret::KeyMaterial;
use kmscks::types::{GrantConstraints, KeyId, KeyRef};

const CALLER: &str = "arn:aws:iam::111122223333:user/uid-1001";

fn context(n: usize) -> EncryptionContext {
    (0..n)
        .map(|i| (format!("key{i}"), format!("value{i}")))
        .collect()
}

/// A key on the default fleet whose policy allows `CALLER` when `policy_allows`, with
/// `grants`.
fn key(engine: &Engine, policy_allows: bool, grants: Vec<(String, EngineGrant)>) -> KeyRef {
    let key = KeyId::generate();
    let mut controls = vec![
        Control::PutKey {
            key,
            gate: Gate::Open,
            authorizer: Arc::new(move |p: &str, _: Action| policy_allows && p == CALLER),
        },
        Control::PutReplica {
            hsm: HsmSlot::Default,
            key,
            material: KeyMaterial::generate(),
        },
    ];
    controls.extend(grants.into_iter().map(|(id, g)| Control::PutGrant {
        key,
        id: id.into(),
        grant: Arc::new(g),
    }));
    engine.apply(&controls).unwrap();
    KeyRef::Id(key)
}

fn grant(grantee: &str, constraints: Option<GrantConstraints>) -> EngineGrant {
    EngineGrant {
        grantee: grantee.into(),
        actions: ActionSet::default().with(Action::Encrypt),
        constraints,
    }
}

fn bench(c: &mut Criterion) {
    let engine = support::one_shard_engine();
    let others = (0..100)
        .map(|i| {
            let who = format!("arn:aws:iam::111122223333:user/other-{i}");
            (format!("g{i}"), grant(&who, None))
        })
        .collect();
    let subset = GrantConstraints {
        encryption_context_subset: Some(context(2)),
        encryption_context_equals: None,
    };
    let cases = [
        ("policy", key(&engine, true, Vec::new())),
        ("policy, 100 grants to others", key(&engine, true, others)),
        (
            "grant",
            key(&engine, false, vec![("g".into(), grant(CALLER, None))]),
        ),
        (
            "grant with a subset constraint",
            key(
                &engine,
                false,
                vec![("g".into(), grant(CALLER, Some(subset)))],
            ),
        ),
    ];
    let ctx = context(4);
    let mut g = c.benchmark_group("encrypt 32 B: who allows it");
    g.throughput(Throughput::Elements(1));
    for (name, key) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| engine.encrypt(CALLER, key, &[7u8; 32], &ctx).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
