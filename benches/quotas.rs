//! What AWS quota emulation costs the hot path: Encrypt (32 B) through the Rust API on a
//! default-store key, with quotas off (the default: one `Option` check) and with quotas
//! emulated at rates no run reaches (every request charged to its buckets) — in the same run,
//! in alternating rounds, so that the machine's drift falls on both. Prints one line per case:
//! the rate over all rounds, and the median of the rounds' ratios to "off".
//!
//! `cargo bench --bench quotas`. One thread, fresh in-memory instances.

use std::time::{Duration, Instant};

use kmscks::api::kms::{CreateKeyRequest, EncryptRequest};
use kmscks::secret::SecretBytes;
use kmscks::{Kms, KmsConfig, QuotaConfig};

const ROUNDS: usize = 9;
const ROUND: Duration = Duration::from_millis(400);
const WARMUP: Duration = Duration::from_millis(100);
/// Calls between two looks at the clock.
const STRIDE: usize = 64;

fn instance(quotas: Option<QuotaConfig>) -> (Kms, EncryptRequest) {
    let kms = Kms::in_memory_with(KmsConfig {
        quotas,
        ..KmsConfig::default()
    });
    let key_id = kms
        .create_key(&CreateKeyRequest::default())
        .expect("an in-memory CreateKey succeeds")
        .key_metadata
        .key_id;
    let req = EncryptRequest {
        key_id,
        plaintext: SecretBytes::from_slice(&[7u8; 32]),
        ..Default::default()
    };
    (kms, req)
}

/// Encrypts for `len` and returns calls per second.
fn run(kms: &Kms, req: &EncryptRequest, len: Duration) -> f64 {
    let start = Instant::now();
    let mut calls = 0u64;
    loop {
        for _ in 0..STRIDE {
            kms.encrypt(req)
                .expect("no request reaches the emulated rates");
        }
        calls += STRIDE as u64;
        let spent = start.elapsed();
        if spent >= len {
            return calls as f64 / spent.as_secs_f64();
        }
    }
}

fn main() {
    let unreachable = QuotaConfig {
        store_crypto_rate: u32::MAX,
        account_crypto_rate: u32::MAX,
        ..QuotaConfig::default()
    };
    let cases = [("quotas off", None), ("quotas emulated", Some(unreachable))];
    let instances: Vec<_> = cases.iter().map(|(_, q)| instance(q.clone())).collect();
    let mut rates = vec![Vec::new(); cases.len()];
    for _ in 0..ROUNDS {
        for (i, (kms, req)) in instances.iter().enumerate() {
            run(kms, req, WARMUP);
            rates[i].push(run(kms, req, ROUND));
        }
    }
    for (i, (name, _)) in cases.iter().enumerate() {
        let mean = rates[i].iter().sum::<f64>() / ROUNDS as f64;
        let mut ratios: Vec<f64> = (0..ROUNDS).map(|r| rates[i][r] / rates[0][r]).collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "encrypt 32 B, 1 thread, {name:<16} {mean:>12.0} calls/s   median ratio to off {:.3}",
            ratios[ROUNDS / 2]
        );
    }
}
