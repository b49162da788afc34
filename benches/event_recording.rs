//! What recording data-plane calls in the KMS event log costs the hot path: Encrypt (32 B)
//! through the Rust API on a default-store key, single calls and batches of 64 (the daemon's
//! batched path), with data-plane events off (`data_plane_event_interval: None`) and on (every
//! call counted per operation, key, principal and outcome; the counts written once a second by
//! the background worker) — in the same run, in alternating rounds (each case first every other
//! round), so that the machine's drift falls on both. Prints one line per case: the rate over all rounds, and the median of the
//! rounds' ratios to "off".
//!
//! `cargo bench --bench event_recording`. One thread, fresh instances in temporary data
//! directories (the counts go to real event log files).

use std::time::{Duration, Instant};

use kmscks::api::kms::{CreateKeyRequest, EncryptRequest};
use kmscks::secret::SecretBytes;
use kmscks::{Kms, KmsConfig};

const ROUNDS: usize = 21;
const ROUND: Duration = Duration::from_millis(200);
const WARMUP: Duration = Duration::from_millis(50);
/// Calls between two looks at the clock.
const STRIDE: usize = 64;
const BATCH: usize = 64;

fn instance(dir: &std::path::Path, interval: Option<Duration>) -> (Kms, EncryptRequest) {
    let kms = Kms::open_with(
        dir,
        KmsConfig {
            data_plane_event_interval: interval,
            ..KmsConfig::default()
        },
    )
    .expect("a fresh data directory opens");
    let key_id = kms
        .create_key(&CreateKeyRequest::default())
        .expect("CreateKey succeeds")
        .key_metadata
        .key_id;
    let req = EncryptRequest {
        key_id,
        plaintext: SecretBytes::from_slice(&[7u8; 32]),
        ..Default::default()
    };
    (kms, req)
}

/// Encrypts for `len` (single calls, or batches of [`BATCH`]) and returns calls per second.
fn run(kms: &Kms, req: &EncryptRequest, batch: &[EncryptRequest], len: Duration) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    loop {
        if batch.is_empty() {
            for _ in 0..STRIDE {
                kms.encrypt(req).expect("Encrypt succeeds");
            }
            calls += STRIDE as u64;
        } else {
            let out = kms.encrypt_batch(batch);
            assert!(out.iter().all(Result::is_ok), "every item succeeds");
            calls += batch.len() as u64;
        }
        let spent = start.elapsed();
        if spent >= len {
            return calls as f64 / spent.as_secs_f64();
        }
    }
}

fn main() {
    let dirs: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir().expect("a temporary directory"))
        .collect();
    let cases = [
        ("events off", None),
        ("events on", Some(Duration::from_secs(1))),
    ];
    let instances: Vec<_> = cases
        .iter()
        .zip(&dirs)
        .map(|((_, interval), dir)| instance(dir.path(), *interval))
        .collect();
    for batched in [false, true] {
        let mut rates = vec![Vec::new(); cases.len()];
        for round in 0..ROUNDS {
            // Alternate which case goes first, so that neither always follows the other.
            let mut order: Vec<usize> = (0..instances.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let (kms, req) = &instances[i];
                let batch: Vec<EncryptRequest> = if batched {
                    (0..BATCH)
                        .map(|_| EncryptRequest {
                            key_id: req.key_id.clone(),
                            plaintext: SecretBytes::from_slice(req.plaintext.expose()),
                            ..Default::default()
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                run(kms, req, &batch, WARMUP);
                rates[i].push(run(kms, req, &batch, ROUND));
            }
        }
        let path = if batched { "batch of 64" } else { "single" };
        for (i, (name, _)) in cases.iter().enumerate() {
            let mean = rates[i].iter().sum::<f64>() / ROUNDS as f64;
            let mut ratios: Vec<f64> = (0..ROUNDS).map(|r| rates[i][r] / rates[0][r]).collect();
            ratios.sort_by(f64::total_cmp);
            println!(
                "encrypt 32 B, {path:<11}, 1 thread, {name:<10} {mean:>12.0} calls/s   median ratio to off {:.3}",
                ratios[ROUNDS / 2]
            );
        }
    }
}
