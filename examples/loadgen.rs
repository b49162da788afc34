//! Runs the in-process load generator against a fresh bootstrapped `Kms` (a key in a
//! connected custom key store, driven through the public API) and prints one JSON line per
//! case, with the raw aws-lc-rs baseline measured in the same run.
//!
//! `cargo run --release --example loadgen` runs the standard matrix;
//! `cargo run --release --example loadgen -- OP THREADS BATCH PAYLOAD MILLIS` runs one case.

use std::time::Duration;

use kmscks::loadgen::{bench_instance, compare_kms, LoadOp, LoadOpts};
use kmscks::KmsConfig;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cases: Vec<LoadOpts> = if args.len() == 5 {
        let num = |i: usize| args[i].parse::<u64>().expect("numeric argument");
        vec![LoadOpts {
            op: LoadOp::parse(&args[0])
                .expect("op: Encrypt|Decrypt|GenerateDataKey|GenerateRandom"),
            threads: num(1) as usize,
            batch: num(2) as usize,
            payload: num(3) as usize,
            duration: Duration::from_millis(num(4)),
        }]
    } else {
        let d = Duration::from_millis(1500);
        let mk = |op, threads, batch, payload| LoadOpts {
            op,
            threads,
            batch,
            payload,
            duration: d,
        };
        vec![
            mk(LoadOp::GenerateDataKey, 1, 1, 32),
            mk(LoadOp::GenerateDataKey, 2, 1, 32),
            mk(LoadOp::GenerateDataKey, 1, 256, 32),
            mk(LoadOp::GenerateDataKey, 2, 256, 32),
            mk(LoadOp::Encrypt, 1, 1, 4096),
            mk(LoadOp::Encrypt, 2, 1, 4096),
            mk(LoadOp::Encrypt, 2, 1, 32),
            mk(LoadOp::Decrypt, 2, 1, 32),
            mk(LoadOp::Decrypt, 2, 1, 4096),
            mk(LoadOp::Encrypt, 2, 64, 4096),
        ]
    };
    let (kms, key) = bench_instance(KmsConfig::default()).expect("bootstrap succeeds");
    for opts in &cases {
        match compare_kms(&kms, &key, opts) {
            Ok(r) => println!("{}", r.to_json()),
            Err(e) => eprintln!("{opts:?}: {e}"),
        }
    }
}
