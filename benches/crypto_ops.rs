//! Engine data-plane operations against the raw aws-lc-rs loop (pooled randomness, cached
//! expanded key, counter nonces), in the same criterion group so the ratio can be read off.
//!
//! Every group covers 32 B and 4 KiB, single calls and batches of 64 (answered owned, and
//! into a reused `BatchOut` as the daemon does), on 1 and 2 threads; and GenerateDataKey
//! batches of 64 through the service, whose items alike go to the engine as runs.
//! Throughput is in items; with T threads the reported time is wall time / T, so the
//! throughput figure is the aggregate over all threads.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kmscks::engine::*;
use kmscks::secret::KeyMaterial;
use kmscks::types::{KeyId, KeyRef};

const P: &str = "arn:aws:iam::111122223333:root";
const BATCH: usize = 64;

fn engine() -> (Arc<Engine>, KeyRef) {
    let e = Engine::new(EngineConfig::default()).unwrap();
    let key = add_load_key(&e).unwrap();
    (Arc::new(e), key)
}

/// Adds a default-fleet key (open gate, every principal allowed) to a bare engine and returns
/// it: the setup of the engine-level load and benches.
fn add_load_key(engine: &Engine) -> kmscks::Result<KeyRef> {
    let key = KeyId::generate();
    engine.apply(&[
        Control::AddHsm {
            hsm: HsmSlot::Default,
        },
        Control::PutKey {
            key,
            gate: Gate::Open,
            authorizer: Arc::new(AllowAll),
        },
        Control::PutReplica {
            hsm: HsmSlot::Default,
            key,
            material: KeyMaterial::generate(),
        },
    ])?;
    Ok(KeyRef::Id(key))
}

/// Runs `iters` iterations of `f` on each of `threads` threads; returns wall time / threads.
fn par(threads: usize, iters: u64, f: &(dyn Fn() + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..iters {
                    f();
                }
            });
        }
    });
    start.elapsed() / threads as u32
}

#[derive(Clone, Copy, PartialEq)]
enum Op {
    GenerateDataKey,
    Encrypt,
    Decrypt,
}

fn raw_op(op: Op, size: usize) -> impl Fn() + Sync {
    let mut m = [0u8; 32];
    aws_lc_rs::rand::fill(&mut m).unwrap();
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &m).unwrap());
    let mut ct = vec![0x5au8; size];
    let n = counter_nonce(1);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(n),
            Aad::from([7u8; 60]),
            &mut ct,
        )
        .unwrap();
    let tag = tag.as_ref().to_vec();
    // Per-thread counters: a shared atomic would make the baseline pay for cache-line
    // bouncing the engine does not have. (Benchmark only: nonces may repeat across threads.)
    thread_local!(static COUNTER: std::cell::Cell<u64> = const { std::cell::Cell::new(2) });
    thread_local!(static POOL: std::cell::RefCell<RandomPool> = std::cell::RefCell::new(RandomPool::new()));
    move || {
        let c = COUNTER.with(|k| {
            k.set(k.get() + 1);
            k.get()
        });
        match op {
            Op::GenerateDataKey | Op::Encrypt => {
                let mut buf = vec![0x5au8; size + 16];
                let (body, t) = buf.split_at_mut(size);
                if op == Op::GenerateDataKey {
                    POOL.with(|p| p.borrow_mut().fill(body).unwrap());
                }
                let tag = key
                    .seal_in_place_separate_tag(
                        Nonce::assume_unique_for_key(counter_nonce(c)),
                        Aad::from([7u8; 60]),
                        body,
                    )
                    .unwrap();
                t.copy_from_slice(tag.as_ref());
                std::hint::black_box(&buf);
            }
            Op::Decrypt => {
                let mut out = vec![0u8; size];
                key.open_separate_gather(
                    Nonce::assume_unique_for_key(n),
                    Aad::from([7u8; 60]),
                    &ct,
                    &tag,
                    &mut out,
                )
                .unwrap();
                std::hint::black_box(&out);
            }
        }
    }
}

fn bench_op(c: &mut Criterion, op: Op, name: &str) {
    let (engine, key) = engine();
    let ctx = BTreeMap::new();
    for size in [32usize, 4096] {
        if op == Op::GenerateDataKey && size > 1024 {
            continue;
        }
        let mut g = c.benchmark_group(format!("{name}/{size}B"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(1));
        let plain = vec![0x5au8; size];
        let blob = engine
            .encrypt(P, &key, &plain, &ctx)
            .unwrap()
            .ciphertext_blob;
        let single = || match op {
            Op::GenerateDataKey => {
                let r = engine.generate_data_key(P, &key, None, Some(size as u32), &ctx);
                std::hint::black_box(r.unwrap());
            }
            Op::Encrypt => {
                std::hint::black_box(engine.encrypt(P, &key, &plain, &ctx).unwrap());
            }
            Op::Decrypt => {
                std::hint::black_box(engine.decrypt(P, &blob, &ctx, None).unwrap());
            }
        };
        let batch = || match op {
            Op::GenerateDataKey => {
                let items: [_; BATCH] = std::array::from_fn(|_| DataKeyItem {
                    key: key.as_name(),
                    key_spec: None,
                    number_of_bytes: Some(size as u32),
                    context: &ctx,
                });
                std::hint::black_box(engine.generate_data_key_batch(P, &items, true));
            }
            Op::Encrypt => {
                let items: [_; BATCH] = std::array::from_fn(|_| EncryptItem {
                    key: key.as_name(),
                    plaintext: &plain,
                    context: &ctx,
                });
                std::hint::black_box(engine.encrypt_batch(P, &items));
            }
            Op::Decrypt => {
                let items: [_; BATCH] = std::array::from_fn(|_| DecryptItem {
                    ciphertext: &blob,
                    context: &ctx,
                    key: None,
                });
                std::hint::black_box(engine.decrypt_batch(P, &items));
            }
        };
        // The same batches answered into a `BatchOut` each thread reuses: what the daemon's
        // event loop does (no allocation once warm).
        let batch_into = || {
            thread_local! {
                static OUT: RefCell<BatchOut> = RefCell::new(BatchOut::new());
            }
            OUT.with_borrow_mut(|out| {
                match op {
                    Op::GenerateDataKey => {
                        let items: [_; BATCH] = std::array::from_fn(|_| DataKeyItem {
                            key: key.as_name(),
                            key_spec: None,
                            number_of_bytes: Some(size as u32),
                            context: &ctx,
                        });
                        engine.generate_data_key_batch_into(P, &items, true, out);
                    }
                    Op::Encrypt => {
                        let items: [_; BATCH] = std::array::from_fn(|_| EncryptItem {
                            key: key.as_name(),
                            plaintext: &plain,
                            context: &ctx,
                        });
                        engine.encrypt_batch_into(P, &items, out);
                    }
                    Op::Decrypt => {
                        let items: [_; BATCH] = std::array::from_fn(|_| DecryptItem {
                            ciphertext: &blob,
                            context: &ctx,
                            key: None,
                        });
                        engine.decrypt_batch_into(P, &items, out);
                    }
                }
                std::hint::black_box(out.len());
            })
        };
        let raw = raw_op(op, size);
        let raw_batch = || {
            for _ in 0..BATCH {
                raw()
            }
        };
        for threads in [1usize, 2] {
            g.throughput(Throughput::Elements(1));
            g.bench_function(BenchmarkId::new("engine-single", threads), |b| {
                b.iter_custom(|iters| par(threads, iters, &single))
            });
            g.bench_function(BenchmarkId::new("baseline-single", threads), |b| {
                b.iter_custom(|iters| par(threads, iters, &raw))
            });
            g.throughput(Throughput::Elements(BATCH as u64));
            g.bench_function(BenchmarkId::new("engine-batch64", threads), |b| {
                b.iter_custom(|iters| par(threads, iters, &batch))
            });
            g.bench_function(BenchmarkId::new("engine-batch64-into", threads), |b| {
                b.iter_custom(|iters| par(threads, iters, &batch_into))
            });
            g.bench_function(BenchmarkId::new("baseline-batch64", threads), |b| {
                b.iter_custom(|iters| par(threads, iters, &raw_batch))
            });
        }
        g.finish();
    }
}

/// GenerateDataKey batches through the service (`Kms`), where a batch's items alike go to the
/// engine as runs (one key named the same way, one size and context): answered owned, and
/// lent from a scratch each thread reuses (the daemon's path), against the raw loop.
fn bench_kms_data_key_runs(c: &mut Criterion) {
    use kmscks::api::kms::{CreateKeyRequest, GenerateDataKeyRequest};
    let kms = kmscks::Kms::in_memory();
    let key = kms
        .create_key(&CreateKeyRequest::default())
        .unwrap()
        .key_metadata
        .arn
        .to_string();
    let items: Vec<GenerateDataKeyRequest> = (0..BATCH)
        .map(|_| GenerateDataKeyRequest {
            key_id: key.clone(),
            number_of_bytes: Some(32),
            ..Default::default()
        })
        .collect();
    let refs: Vec<_> = items.iter().map(GenerateDataKeyRequest::borrowed).collect();
    let owned = || {
        std::hint::black_box(kms.generate_data_key_batch(&items, true));
    };
    let lent = || {
        thread_local! {
            static SCRATCH: RefCell<kmscks::BatchScratch> = RefCell::default();
        }
        SCRATCH.with_borrow_mut(|scratch| {
            kms.generate_data_key_batch_with(&refs, true, scratch, |r| {
                std::hint::black_box(r.unwrap().ciphertext_blob);
            })
        })
    };
    let raw = raw_op(Op::GenerateDataKey, 32);
    let raw_batch = || {
        for _ in 0..BATCH {
            raw()
        }
    };
    let mut g = c.benchmark_group("GenerateDataKey/kms/32B");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(BATCH as u64));
    for threads in [1usize, 2] {
        g.bench_function(BenchmarkId::new("kms-batch64", threads), |b| {
            b.iter_custom(|iters| par(threads, iters, &owned))
        });
        g.bench_function(BenchmarkId::new("kms-batch64-lent", threads), |b| {
            b.iter_custom(|iters| par(threads, iters, &lent))
        });
        g.bench_function(BenchmarkId::new("baseline-batch64", threads), |b| {
            b.iter_custom(|iters| par(threads, iters, &raw_batch))
        });
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    bench_kms_data_key_runs(c);
    bench_op(c, Op::GenerateDataKey, "GenerateDataKey");
    bench_op(c, Op::Encrypt, "Encrypt");
    bench_op(c, Op::Decrypt, "Decrypt");
}

criterion_group!(crypto_ops, benches);
criterion_main!(crypto_ops);
